#!/bin/bash
# Qdrant benchmarks against the local stack (not part of the test suite):
#
#   0. the client's own cost: insert N points of dimension DIM through a
#      foreign table into the nginx stub (test/bench/stub, canned replies),
#      batch_size BATCH versus batch_size 1 (on N1 points); and UPDATE and
#      DELETE of N1 points through the stand-in, batched versus batch_size 1;
#   1. insert N points through a foreign table into the Node stand-in
#      (batched upserts) versus one qdrant_upsert() call per point: rates
#      and ratio;
#   2. backend peak memory (VmHWM) while scanning SMALL versus N points
#      through a foreign table: should be the same within a small margin.
#
#   test/bench/qdrant/run.sh            N=100000 N1=5000 DIM=384 SMALL=10000 RUNS=3
#   STANDIN=0 test/bench/qdrant/run.sh  part 0 only (what report.sh keeps)
#
# It builds and installs this tree first; run it under the stack lock:
#   flock /tmp/datacore-check.lock test/bench/qdrant/run.sh
# It works in its own database (datacore_bench, made afresh) and its own
# server (bench_qdrant), and drops the collections it made.  Reading
# /proc/<pid>/clear_refs needs the same OS user as the backend, or root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
bench_install
stub_start
trap 'stub_stop' EXIT

N=${N:-100000}
DIM=${DIM:-384}
SMALL=${SMALL:-10000}
N1=${N1:-5000}
STANDIN=${STANDIN:-1}
RUNS=${RUNS:-3}
BATCH=${BATCH:-64}
DB=datacore_bench

psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"

psql_db <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
SET search_path = datacore, public;
CREATE SERVER bench_qdrant FOREIGN DATA WRAPPER datacore_qdrant
	OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT', timeout_ms '600000');
-- the source rows: random vectors, made once
DROP TABLE IF EXISTS bench_src;
CREATE TABLE bench_src AS
	SELECT i AS id, ARRAY(SELECT (random() + 0 * i)::real FROM generate_series(1, $DIM)) AS vector,
		   jsonb_build_object('n', i, 'tag', 'bench') AS payload
	FROM generate_series(1, $N) i;
CREATE FUNCTION bench_reset(c text) RETURNS void LANGUAGE sql AS \$\$
	SELECT qdrant_drop_collection(c, true, 'bench_qdrant');
	SELECT qdrant_create_collection(c, $DIM, 'Cosine', false, 'bench_qdrant');
\$\$;
-- milliseconds a statement takes
CREATE FUNCTION bench_ms(stmt text) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE stmt;
	RETURN round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1);
END \$\$;
CREATE FOREIGN TABLE bench_ft (id bigint, vector real[], payload jsonb)
	SERVER bench_qdrant OPTIONS (collection 'bench_ft', batch_size '$BATCH');
CREATE FOREIGN TABLE bench_small (id bigint, vector real[], payload jsonb)
	SERVER bench_qdrant OPTIONS (collection 'bench_small');
CREATE SERVER bench_stub FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url '$STUB_URL');
CREATE FOREIGN TABLE stub_b (id bigint, vector real[], payload jsonb)
	SERVER bench_stub OPTIONS (collection 'bench_stub', batch_size '$BATCH');
CREATE FOREIGN TABLE stub_1 (id bigint, vector real[], payload jsonb)
	SERVER bench_stub OPTIONS (collection 'bench_stub', batch_size '1');
CREATE FOREIGN TABLE mod_b (id bigint, vector real[], payload jsonb, tag text)
	SERVER bench_qdrant OPTIONS (collection 'bench_mod', batch_size '$BATCH');
CREATE FOREIGN TABLE mod_1 (id bigint, vector real[], payload jsonb, tag text)
	SERVER bench_qdrant OPTIONS (collection 'bench_mod', batch_size '1');
SQL

# 0. The client's cost, rounds alternating the contenders, round 0 a warm-up.
echo "== the client's cost: INSERT of $DIM-dimensional points into the nginx stub, $RUNS rounds (medians)"
psql_db -q -c "CREATE TABLE t (who text, round int, ms numeric)"
for r in $(seq 0 "$RUNS"); do
	psql_db -q >/dev/null <<SQL
SET search_path = datacore, public;
INSERT INTO t SELECT 'ins_b', $r, bench_ms('INSERT INTO stub_b SELECT id, vector, payload FROM bench_src');
INSERT INTO t SELECT 'ins_1', $r, bench_ms('INSERT INTO stub_1 SELECT id, vector, payload FROM bench_src WHERE id <= $N1');
SELECT bench_reset('bench_mod');
INSERT INTO mod_b SELECT id, vector, payload, 'a' FROM bench_src WHERE id <= $N1;
INSERT INTO t SELECT 'upd_b', $r, bench_ms('UPDATE mod_b SET tag = ''b''');
INSERT INTO t SELECT 'upd_1', $r, bench_ms('UPDATE mod_1 SET tag = ''c''');
INSERT INTO t SELECT 'del_b', $r, bench_ms('DELETE FROM mod_b WHERE id % 2 = 0');
INSERT INTO t SELECT 'del_1', $r, bench_ms('DELETE FROM mod_1');
SQL
done
m() { psql_db -At -c "SELECT ms FROM t WHERE who = '$1' AND round > 0" | median; }
ins_b=$(m ins_b) ins_1=$(m ins_1) upd_b=$(m upd_b) upd_1=$(m upd_1) del_b=$(m del_b) del_1=$(m del_1)
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", n / (ms / 1000) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
ins_b_r=$(rate "$N" "$ins_b") ins_1_r=$(rate "$N1" "$ins_1")
upd_b_r=$(rate "$N1" "$upd_b") upd_1_r=$(rate "$N1" "$upd_1")
del_b_r=$(rate "$((N1 / 2))" "$del_b") del_1_r=$(rate "$((N1 / 2))" "$del_1")
printf '  INSERT batch_size %-3d %7d points %10.1f ms %8d points/s\n' "$BATCH" "$N" "$ins_b" "$ins_b_r"
printf '  INSERT batch_size 1   %7d points %10.1f ms %8d points/s   ratio %sx\n' "$N1" "$ins_1" "$ins_1_r" "$(ratio "$ins_b_r" "$ins_1_r")"
echo "== UPDATE of a payload key and DELETE through the stand-in (a scan, then the writes)"
printf '  UPDATE batch_size %-3d %7d rows %10.1f ms %8d rows/s\n' "$BATCH" "$N1" "$upd_b" "$upd_b_r"
printf '  UPDATE batch_size 1   %7d rows %10.1f ms %8d rows/s   ratio %sx\n' "$N1" "$upd_1" "$upd_1_r" "$(ratio "$upd_b_r" "$upd_1_r")"
printf '  DELETE batch_size %-3d %7d rows %10.1f ms %8d rows/s\n' "$BATCH" "$((N1 / 2))" "$del_b" "$del_b_r"
printf '  DELETE batch_size 1   %7d rows %10.1f ms %8d rows/s   ratio %sx\n' "$((N1 / 2))" "$del_1" "$del_1_r" "$(ratio "$del_b_r" "$del_1_r")"
bench_result "Qdrant FDW INSERT of $DIM-dim points into the nginx stub, points/s, vs the goal 50,000 points/s (goal >= 1.00)" \
	"$ins_b_r" 50000 "$(awk -v a="$ins_b_r" 'BEGIN { printf "%.2f", a / 50000 }')"
bench_result "Qdrant FDW INSERT into the nginx stub, points/s, batch_size $BATCH vs batch_size 1 (goal >= 20)" \
	"$ins_b_r" "$ins_1_r" "$(ratio "$ins_b_r" "$ins_1_r")"
bench_result "Qdrant FDW UPDATE of a payload key through the stand-in, rows/s, batch_size $BATCH vs batch_size 1" \
	"$upd_b_r" "$upd_1_r" "$(ratio "$upd_b_r" "$upd_1_r")"
bench_result "Qdrant FDW DELETE through the stand-in, rows/s, batch_size $BATCH vs batch_size 1" \
	"$del_b_r" "$del_1_r" "$(ratio "$del_b_r" "$del_1_r")"
psql_db -qc "SELECT datacore.qdrant_drop_collection('bench_mod', true, 'bench_qdrant')" >/dev/null
if [[ $STANDIN == 0 ]]; then
	psql -X -q -d postgres -c "DROP DATABASE $DB"
	exit 0
fi

echo "== insert: $N points of dimension $DIM, $RUNS runs (foreign table batch_size $BATCH)"
ft_ms=()
pp_ms=()
for run in $(seq 1 "$RUNS"); do
	ft=$(psql_db -At <<SQL
SET search_path = datacore, public;
SELECT bench_reset('bench_ft');
SELECT bench_ms('INSERT INTO bench_ft SELECT id, vector, payload FROM bench_src');
SQL
)
	pp=$(psql_db -At <<SQL
SET search_path = datacore, public;
SELECT bench_reset('bench_pp');
SELECT bench_ms('SELECT count(qdrant_upsert(''bench_pp'', id, vector, payload, true, ''bench_qdrant'')) FROM bench_src');
SQL
)
	ft=$(tail -n1 <<<"$ft")
	pp=$(tail -n1 <<<"$pp")
	printf '  run %d: foreign table %10.1f ms   per-point qdrant_upsert %10.1f ms\n' "$run" "$ft" "$pp"
	ft_ms+=("$ft")
	pp_ms+=("$pp")
done
ft_med=$(printf '%s\n' "${ft_ms[@]}" | median)
pp_med=$(printf '%s\n' "${pp_ms[@]}" | median)
awk -v n="$N" -v ft="$ft_med" -v pp="$pp_med" 'BEGIN {
	printf "  median: foreign table %.1f ms = %.0f points/s; per-point %.1f ms = %.0f points/s; ratio %.1fx\n",
		ft, n / (ft / 1000), pp, n / (pp / 1000), pp / ft }'
psql_db -Atc "SELECT 'points stored: ' || datacore.qdrant_count('bench_ft', NULL, true, 'bench_qdrant') || ' (foreign table), ' || datacore.qdrant_count('bench_pp', NULL, true, 'bench_qdrant') || ' (per point)'"
psql_db -qc "SELECT datacore.qdrant_drop_collection('bench_pp', true, 'bench_qdrant')" >/dev/null

# The same upserts sent by curl over one keep-alive connection, without
# PostgreSQL: what the stand-in itself allows, i.e. the best ratio any
# client could reach against it.
echo "== the stand-in alone (curl, keep-alive): $BATCH-point versus 1-point upserts"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; stub_stop' EXIT
python3 - "$tmp" "$DIM" "$BATCH" <<'PY'
import json, random, sys
out, dim, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pts = [{"id": i, "vector": [random.random() for _ in range(dim)], "payload": {"n": i}} for i in range(batch)]
open(out + "/batch.json", "w").write(json.dumps({"points": pts}))
open(out + "/one.json", "w").write(json.dumps({"points": pts[:1]}))
PY
base="http://127.0.0.1:$DC_QDRANT_PORT/collections/bench_curl"
curl -s -X PUT -H 'Content-Type: application/json' -d "{\"vectors\":{\"size\":$DIM,\"distance\":\"Cosine\"}}" "$base" >/dev/null
reqs=$((6400 / BATCH))
t_batch=$( { /usr/bin/time -f %e curl -s -X PUT -H 'Content-Type: application/json' --data-binary @"$tmp/batch.json" \
	$(for _ in $(seq 1 "$reqs"); do echo "$base/points?wait=true"; done) >/dev/null; } 2>&1)
t_one=$( { /usr/bin/time -f %e curl -s -X PUT -H 'Content-Type: application/json' --data-binary @"$tmp/one.json" \
	$(for _ in $(seq 1 1000); do echo "$base/points?wait=true"; done) >/dev/null; } 2>&1)
curl -s -X DELETE "$base" >/dev/null
awk -v tb="$t_batch" -v to="$t_one" -v nb="$((reqs * BATCH))" -v b="$BATCH" 'BEGIN {
	printf "  %d points in %d-point requests: %.0f points/s; 1000 one-point requests: %.0f points/s; ceiling ratio %.1fx\n",
		nb, b, nb / tb, 1000 / to, (nb / tb) / (1000 / to) }'

echo "== scan memory: backend VmHWM reading every vector and payload, $RUNS runs each"
psql_db -At <<SQL >/dev/null
SET search_path = datacore, public;
SELECT bench_reset('bench_small');
INSERT INTO bench_small SELECT id, vector, payload FROM bench_src WHERE id <= $SMALL;
SQL

# One fresh backend per measurement: warm up (module, caches), reset the
# peak, scan, read the peak.
scan_peak() {
	local table=$1 out pid
	out=$(psql_db -At <<SQL
SET search_path = datacore, public;
SELECT count(*) FROM (SELECT * FROM $table LIMIT 300) s;
SELECT pg_backend_pid() AS pid \gset
\setenv BENCH_PID :pid
\! echo 5 > /proc/\$BENCH_PID/clear_refs
SELECT bench_ms('SELECT sum(array_length(vector, 1)), count(payload) FROM $table');
\! echo "hwm \$(awk '/VmHWM/ {print \$2}' /proc/\$BENCH_PID/status)"
SQL
)
	printf '%s %s\n' "$(grep '^hwm' <<<"$out" | awk '{print $2}')" "$(grep -v '^hwm' <<<"$out" | tail -n1)"
}

small_kb=()
big_kb=()
for run in $(seq 1 "$RUNS"); do
	read -r s_kb s_ms < <(scan_peak bench_small)
	read -r b_kb b_ms < <(scan_peak bench_ft)
	printf '  run %d: %6d points %8d kB peak (%8.1f ms)   %6d points %8d kB peak (%8.1f ms)\n' \
		"$run" "$SMALL" "$s_kb" "$s_ms" "$N" "$b_kb" "$b_ms"
	small_kb+=("$s_kb")
	big_kb+=("$b_kb")
done
s_med=$(printf '%s\n' "${small_kb[@]}" | median)
b_med=$(printf '%s\n' "${big_kb[@]}" | median)
awk -v s="$s_med" -v b="$b_med" -v ns="$SMALL" -v nb="$N" 'BEGIN {
	printf "  median peak: %d points %d kB, %d points %d kB; difference %+d kB (%+.1f%%)\n",
		ns, s, nb, b, b - s, (b - s) * 100 / s }'

psql_db -q <<SQL >/dev/null
SELECT datacore.qdrant_drop_collection(c, true, 'bench_qdrant') FROM unnest(ARRAY['bench_ft', 'bench_small']) c;
SQL
psql -X -q -d postgres -c "DROP DATABASE $DB"
