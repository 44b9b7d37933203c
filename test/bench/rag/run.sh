#!/bin/bash
# RAG sync benchmark (not part of the test suite), against the stack's
# stand-ins: a full rag_sync of N (2000) rows with batch_size B (64) — one
# embed request and one upsert per batch — versus batch_size 1, one of each
# per row (what a per-row trigger or loop would cost), and the cost of a sync
# that finds nothing to do (one index range scan).
#
# Rounds alternate the contenders so drift hits both; round 0 warms up the
# stand-ins and is not counted; medians are printed with the ratio.  The
# script builds and installs this tree and restarts the stack's PostgreSQL,
# so run it under the shared lock:
#   flock /tmp/datacore-check.lock test/bench/rag/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
bench_install

N=${N:-2000}
B=${B:-64}
ROUNDS=${ROUNDS:-5}
DB=${DB:-dc_bench_rag}
trap 'psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT

psql -qX -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', model 'llama3.2', embedding_model 'nomic-embed-text');
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT');
CREATE TABLE docs (id bigint PRIMARY KEY, body text NOT NULL, tag text, updated timestamptz NOT NULL);
CREATE INDEX ON docs (updated, id);
INSERT INTO docs
SELECT i, format('document %s about %s and %s', i, md5(i::text), md5((i * 7)::text)),
	   CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END,
	   '2026-01-01'::timestamptz + i * interval '1 second'
  FROM generate_series(1, $N) i;
SELECT datacore.qdrant_drop_collection(c, true) FROM unnest(ARRAY['bench_rag_batch', 'bench_rag_row']) c;
SELECT datacore.rag_create('batch', 'docs', 'id', 'body', 'updated', 'bench_rag_batch', '{tag}', batch_size => $B);
SELECT datacore.rag_create('row', 'docs', 'id', 'body', 'updated', 'bench_rag_row', '{tag}', batch_size => 1);
CREATE TABLE t (who text, round int, ms float8);
SQL


for r in $(seq 0 "$ROUNDS"); do
	for who in batch row; do
		psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT datacore.rag_reset('$who', drop_collection => true);
DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); n bigint;
BEGIN
	n := datacore.rag_sync('$who');
	IF n <> $N THEN RAISE EXCEPTION 'synced % rows, expected $N', n; END IF;
	INSERT INTO t VALUES ('$who', $r, extract(epoch FROM clock_timestamp() - t0) * 1e3);
	t0 := clock_timestamp();
	n := datacore.rag_sync('$who');
	IF n <> 0 THEN RAISE EXCEPTION 'idle sync sent % rows', n; END IF;
	INSERT INTO t VALUES ('$who-idle', $r, extract(epoch FROM clock_timestamp() - t0) * 1e3);
END \$\$;
SQL
	done
done

m() { psql -qXAt -d "$DB" -c "SELECT ms FROM t WHERE who = '$1' AND round > 0" | median; }
batch=$(m batch) row=$(m row) idle=$(m batch-idle)
count=$(psql -qXAt -d "$DB" -c "SELECT datacore.qdrant_count('bench_rag_batch')")
printf 'rag_sync of %d rows (%d rounds, medians; collection holds %s points)\n' "$N" "$ROUNDS" "$count"
printf '  batch_size %-4d %9.1f ms  (%.0f rows/s, %d embed + %d upsert requests)\n' \
	"$B" "$batch" "$(echo "$N / ($batch / 1000)" | bc -l)" $(( (N + B - 1) / B )) $(( (N + B - 1) / B ))
printf '  batch_size 1    %9.1f ms  (%.0f rows/s, %d embed + %d upsert requests)\n' \
	"$row" "$(echo "$N / ($row / 1000)" | bc -l)" "$N" "$N"
printf '  ratio row/batch %9.1fx\n' "$(echo "$row / $batch" | bc -l)"
printf '  sync with nothing to do: %.2f ms\n' "$idle"
psql -qX -d "$DB" -c "SET client_min_messages = warning" \
	-c "SELECT datacore.qdrant_drop_collection(c, true) FROM unnest(ARRAY['bench_rag_batch', 'bench_rag_row']) c" >/dev/null
