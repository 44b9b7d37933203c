#!/bin/bash
# RAG sync benchmark (not part of the test suite): rag_sync of N (10,000)
# documents of 2,000 characters, chunked at 500 characters (4 chunks each),
# batched (batch_size B, 64: 64 rows read at a time, their 256 chunks sent
# in embed requests of 64 texts, one upsert of 64 points each) versus
# batch_size 1 (one request and one upsert per chunk) on N1 (1,000) of the documents, and the cost of a sync that finds
# nothing to do.  Also the recursive chunker on its own (chunks/s).
#
# The embed server is Debian's nginx-light answering /api/embed at once with
# a canned reply (installed by this script if missing): one reply of B
# vectors, one of 1 vector, on two ports, so every request must carry
# exactly that many texts — the character chunker and 2,000-character
# documents make it so, and ollama_embed refuses a reply whose vector count
# differs.  Qdrant is the same nginx answering every upsert with a canned
# success (QDRANT=standin: the stack's Node stand-in instead, which parses
# and stores every point and so sets the pace itself).  So this measures
# datacore's own cost and its round trips, not a model or a vector store.
#
# Rounds alternate the contenders; round 0 warms up and is not counted;
# medians are printed.  The script builds and installs this tree and restarts
# the stack's PostgreSQL, so run it under the shared lock:
#   flock /tmp/datacore-check.lock test/bench/rag/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh

N=${N:-10000}
N1=${N1:-1000}
B=${B:-64}
DIM=${DIM:-384}
ROUNDS=${ROUNDS:-3}
DB=${DB:-dc_bench_rag}
PORT_B=${PORT_B:-51501}
PORT_1=${PORT_1:-51502}
PORT_Q=${PORT_Q:-51503}
QDRANT=${QDRANT:-stub}
(( N % B * 4 % B == 0 )) || { echo "every embed request must carry exactly B texts: pick N and B so that the last batch does too" >&2; exit 1; }

command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
bench_install
qport=$([[ $QDRANT == standin ]] && echo "$DC_QDRANT_PORT" || echo "$PORT_Q")

work=$(mktemp -d)
chmod 755 "$work"   # nginx workers run as www-data
nginx_pid=
cleanup() {
	[[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null || true
	psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# canned replies: B and 1 unit vectors of DIM dimensions
mkdir -p "$work/logs" "$work/b/api" "$work/1/api"
chmod -R a+rX "$work"
python3 - "$work" "$B" "$DIM" <<'PY'
import json, math, sys
work, b, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v = [round(1 / math.sqrt(dim), 6)] * dim
for n, name in ((b, 'b'), (1, '1')):
    with open(f'{work}/{name}/api/embed', 'w') as f:
        json.dump({"model": "nomic-embed-text", "embeddings": [v] * n, "prompt_eval_count": n}, f)
PY
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_buffer_size 1m;
	client_max_body_size 64m;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:$PORT_B;
		location = /api/embed { root $work/b; default_type application/json; error_page 405 =200 \$uri; }
	}
	server {
		listen 127.0.0.1:$PORT_1;
		location = /api/embed { root $work/1; default_type application/json; error_page 405 =200 \$uri; }
	}
	server {
		listen 127.0.0.1:$PORT_Q;
		default_type application/json;
		location ~ ^/collections/[^/]+/exists\$ { return 200 '{"result":{"exists":true},"status":"ok","time":0.0}'; }
		location ~ ^/collections/[^/]+/points { return 200 '{"result":{"operation_id":1,"status":"completed"},"status":"ok","time":0.0}'; }
		location ~ ^/collections/[^/]+\$ { return 200 '{"result":true,"status":"ok","time":0.0}'; }
	}
}
CONF
nginx -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT_1/api/embed" && break; sleep 0.1; done

psql -qX -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
CREATE SERVER embed_b FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:$PORT_B', embedding_model 'nomic-embed-text', embed_batch_size '$B');
CREATE SERVER embed_1 FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:$PORT_1', embedding_model 'nomic-embed-text');
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'http://127.0.0.1:$qport');
-- 2,000 characters of words, different per document
CREATE TABLE docs (id bigint PRIMARY KEY, body text NOT NULL, tag text, updated timestamptz NOT NULL);
CREATE INDEX ON docs (updated, id);
INSERT INTO docs
SELECT i, left(string_agg(md5((i * 100 + j)::text), ' '), 2000),
	   CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END,
	   '2026-01-01'::timestamptz + i * interval '1 second'
  FROM generate_series(1, $N) i, generate_series(1, 61) j GROUP BY i;
CREATE VIEW docs_1 AS SELECT * FROM docs WHERE id <= $N1;
SELECT datacore.qdrant_drop_collection(c, true) FROM unnest(ARRAY['bench_rag_batch', 'bench_rag_row']) c;
SELECT datacore.rag_create('batch', 'docs', 'id', 'body', 'updated', 'bench_rag_batch', '{tag}',
						   batch_size => $B, ollama_server => 'embed_b',
						   chunker => 'character', chunk_size => 500);
SELECT datacore.rag_create('row', 'docs_1', 'id', 'body', 'updated', 'bench_rag_row', '{tag}',
						   batch_size => 1, ollama_server => 'embed_1',
						   chunker => 'character', chunk_size => 500);
CREATE TABLE t (who text, round int, ms float8);
SQL

for r in $(seq 0 "$ROUNDS"); do
	for who in batch row; do
		want=$([[ $who == batch ]] && echo "$N" || echo "$N1")
		psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT datacore.rag_reset('$who', drop_collection => true);
DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); n bigint;
BEGIN
	n := datacore.rag_sync('$who');
	IF n <> $want THEN RAISE EXCEPTION 'synced % rows, expected $want', n; END IF;
	INSERT INTO t VALUES ('$who', $r, extract(epoch FROM clock_timestamp() - t0) * 1e3);
	t0 := clock_timestamp();
	n := datacore.rag_sync('$who');
	IF n <> 0 THEN RAISE EXCEPTION 'idle sync sent % rows', n; END IF;
	INSERT INTO t VALUES ('$who-idle', $r, extract(epoch FROM clock_timestamp() - t0) * 1e3);
END \$\$;
SQL
	done
	psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO t SELECT 'recursive', $r, extract(epoch FROM clock_timestamp() - now()) * 1e3
  FROM (SELECT count(*) FROM docs, datacore.rag_chunks(body, 'recursive', 500, 50)) c;
SQL
done

m() { psql -qXAt -d "$DB" -c "SELECT ms FROM t WHERE who = '$1' AND round > 0" | median; }
batch=$(m batch) row=$(m row) idle=$(m batch-idle) rec=$(m recursive)
if [[ $QDRANT == standin ]]; then
	count=$(psql -qXAt -d "$DB" -c "SELECT datacore.qdrant_count('bench_rag_batch')")
else
	count=$(( N * 4 ))    # the stub stores nothing; rag_sync checked the rows
fi
rec_chunks=$(psql -qXAt -d "$DB" -c "SELECT count(*) FROM docs, datacore.rag_chunks(body, 'recursive', 500, 50)")
cps_b=$(echo "$count / ($batch / 1000)" | bc -l)
cps_1=$(echo "$N1 * 4 / ($row / 1000)" | bc -l)
printf 'rag_sync of 2,000-character documents in 500-character chunks, %d-dimensional vectors (%d rounds, medians)\n' "$DIM" "$ROUNDS"
printf '  batched (%d texts per request): %6d docs %9.1f ms  %7.0f chunks/s  %6.0f rows/s  (%d embed + %d upsert requests; %s points)\n' \
	"$B" "$N" "$batch" "$cps_b" "$(echo "$N / ($batch / 1000)" | bc -l)" $(( N * 4 / B )) $(( N * 4 / B )) "$count"
printf '  batch_size 1:                    %6d docs %9.1f ms  %7.0f chunks/s  %6.0f rows/s  (%d embed + %d upsert requests)\n' \
	"$N1" "$row" "$cps_1" "$(echo "$N1 / ($row / 1000)" | bc -l)" $(( N1 * 4 )) $(( N1 * 4 ))
printf '  ratio (chunks/s batched / unbatched) %5.1fx\n' "$(echo "$cps_b / $cps_1" | bc -l)"
printf '  sync with nothing to do: %.2f ms\n' "$idle"
against=$([[ $QDRANT == standin ]] && echo "the Qdrant stand-in" || echo "the nginx stub")
bench_result "rag_sync chunks/s, $DIM dims, $B texts per request, Qdrant: $against, vs the goal 5,000 chunks/s (goal >= 1.00)" \
	"$(printf '%.0f' "$cps_b")" 5000 "$(printf '%.2f' "$(echo "$cps_b / 5000" | bc -l)")"
bench_result "rag_sync rows/s, $DIM dims, batched vs batch_size 1" \
	"$(printf '%.0f' "$(echo "$N / ($batch / 1000)" | bc -l)")" "$(printf '%.0f' "$(echo "$N1 / ($row / 1000)" | bc -l)")" \
	"$(printf '%.1f' "$(echo "$cps_b / $cps_1" | bc -l)")"
printf '  recursive chunker alone: %d docs -> %d chunks in %.1f ms (%.0f chunks/s)\n' \
	"$N" "$rec_chunks" "$rec" "$(echo "$rec_chunks / ($rec / 1000)" | bc -l)"
psql -qX -d "$DB" -c "SET client_min_messages = warning" \
	-c "SELECT datacore.qdrant_drop_collection(c, true) FROM unnest(ARRAY['bench_rag_batch', 'bench_rag_row']) c" >/dev/null
