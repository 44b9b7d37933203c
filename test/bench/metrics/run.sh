#!/bin/bash
# Benchmark: what recording metrics costs on the hot paths — a Redis round
# trip (redis_get) and a small HTTP request (ollama_version against the
# stand-in) — timed with datacore.track_metrics on and off, alternating, in
# one session; prints the median time per call of each and the difference.
# Calls in one statement (one metrics key each), so the key's slot is found
# in the backend's own table after the first call, as on any busy server.
# Also the shared memory the metrics table takes.
#
#   flock /tmp/datacore-check.lock test/bench/metrics/run.sh [rounds]   (default 16)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
bench_install

ROUNDS=${1:-16}
REDIS_CALLS=${DC_BENCH_REDIS_CALLS:-10000}
HTTP_CALLS=${DC_BENCH_HTTP_CALLS:-2000}
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -d metrics_bench)

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS metrics_bench" -c "CREATE DATABASE metrics_bench"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS metrics_bench" >/dev/null 2>&1 || true' EXIT
"${PSQL[@]}" <<SQL
CREATE EXTENSION datacore;
CREATE SERVER redis FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '127.0.0.1', port '$DC_REDIS_PORT');
CREATE USER MAPPING FOR PUBLIC SERVER redis OPTIONS (user '$DC_REDIS_USER', password '$DC_REDIS_PASSWORD');
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT');
SELECT datacore.redis_set('bench:metrics', 'value');
-- microseconds per call of a statement that makes n calls, timed in the backend
CREATE FUNCTION bench_us(sql text, n int) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz;
BEGIN
	t0 := clock_timestamp();
	EXECUTE sql;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END \$\$;
SQL

# rounds alternate on and off inside one session (same connections, same
# backend), after 500 warm-up calls; the median per mode is taken in SQL
measure() {
    local name=$1 sql=$2 n=$3
    "${PSQL[@]}" -F ' ' <<SQL
SELECT bench_us(\$q\$${sql//%N%/500}\$q\$, 500) \gset warm_
CREATE TEMP TABLE IF NOT EXISTS t (mode text, us float8);
TRUNCATE t;
DO \$\$
DECLARE m text;
BEGIN
	-- the order flips every round, so neither mode always runs first
	FOR i IN 1..$ROUNDS LOOP
		FOREACH m IN ARRAY CASE WHEN i % 2 = 1 THEN ARRAY['on', 'off'] ELSE ARRAY['off', 'on'] END LOOP
			PERFORM set_config('datacore.track_metrics', m, false);
			INSERT INTO t SELECT m, bench_us(\$q\$${sql//%N%/$n}\$q\$, $n);
		END LOOP;
	END LOOP;
END \$\$;
SELECT format('  %-28s metrics on %8s µs/call   off %8s µs/call   difference %s µs',
              '$name', round(a::numeric, 2), round(b::numeric, 2), round((a - b)::numeric, 2))
  FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FILTER (WHERE mode = 'on') a,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FILTER (WHERE mode = 'off') b FROM t) x;
SQL
}

echo "== median time per call over $ROUNDS rounds (on and off alternating)"
measure "redis_get x$REDIS_CALLS" \
    "SELECT count(datacore.redis_get('bench:metrics')) FROM generate_series(1, %N%)" "$REDIS_CALLS"
measure "ollama_version x$HTTP_CALLS" \
    "SELECT count(datacore.ollama_version()) FROM generate_series(1, %N%)" "$HTTP_CALLS"

echo "== recorded (metrics on)"
"${PSQL[@]}" -c "SELECT format('  %s/%s: %s requests, %s bytes sent, %s received', server, operation, requests, bytes_sent, bytes_received)
                   FROM datacore.metrics WHERE database = 'metrics_bench' ORDER BY 1"
echo "== shared memory"
"${PSQL[@]}" -c "SELECT format('  %s: %s bytes for %s entries (about %s bytes each)', a.name, a.size, i.max_entries,
                               a.size / i.max_entries)
                   FROM pg_shmem_allocations a, datacore.metrics_info() i WHERE a.name = 'datacore metrics'"
