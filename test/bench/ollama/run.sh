#!/bin/bash
# Ollama benchmarks (not part of the test suite):
#
#  1. per-call overhead: N (2000) SELECT datacore.ollama_generate(...) in one
#     session, each call timed inside the server, versus the same N requests
#     from a small libcurl program over one keep-alive handle, both against
#     the nginx stub (test/bench/stub), whose canned answer costs next to
#     nothing, so the client's own time shows;
#  2. embeddings: M (10000) short texts through the batched
#     ollama_embed(text[]) versus one ollama_embed(text) call per text,
#     against the stack's stand-in (the stub's canned reply has one vector).
#
# Rounds alternate the contenders so drift hits both; round 0 warms up the
# stand-in (its per-word embedding cache) and is not counted; medians are
# printed with the ratios.  The script builds and installs this tree and restarts
# the stack's PostgreSQL, so run it under the shared lock:
#   flock /tmp/datacore-check.lock test/bench/ollama/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
bench_install

N=${N:-2000}
M=${M:-10000}
ROUNDS=${ROUNDS:-5}
DB=${DB:-dc_bench_ollama}
OLLAMA_URL="http://127.0.0.1:$DC_OLLAMA_PORT"
WORK=$(mktemp -d)
stub_start
trap 'stub_stop; rm -rf "$WORK"; psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT

gcc -O2 -Wall -o "$WORK/curl_generate" test/bench/ollama/curl_generate.c $(pkg-config --cflags --libs libcurl)

psql -qX -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url '$OLLAMA_URL', model 'llama3.2', embedding_model 'nomic-embed-text');
CREATE SERVER ollama_stub FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url '$STUB_URL', model 'llama3.2');
CREATE TABLE lat (who text, round int, us float8);
CREATE TABLE emb (who text, round int, ms float8);
SQL


for r in $(seq 0 "$ROUNDS"); do
	# 1a: SQL, every call timed with clock_timestamp() around it
	psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$
DECLARE t0 timestamptz; t text;
BEGIN
	FOR i IN 1..$N LOOP
		t0 := clock_timestamp();
		t := datacore.ollama_generate('hi', server => 'ollama_stub');
		INSERT INTO lat VALUES ('sql', $r, extract(epoch FROM clock_timestamp() - t0) * 1e6);
	END LOOP;
END \$\$;
SQL
	# 1b: libcurl baseline
	"$WORK/curl_generate" "$STUB_URL" "$N" | sed "s/^/c,$r,/" > "$WORK/c.csv"
	psql -qX -d "$DB" -c "\\copy lat FROM '$WORK/c.csv' (FORMAT csv)" >/dev/null

	# 2: batched vs per-text embeddings of the same M short texts
	psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$
DECLARE t0 timestamptz; n int; texts text[];
BEGIN
	texts := ARRAY(SELECT 'short text number ' || g || ' about item ' || (g % 97) FROM generate_series(1, $M) g);
	t0 := clock_timestamp();
	SELECT count(*) INTO n FROM datacore.ollama_embed(texts);
	INSERT INTO emb VALUES ('batched', $r, extract(epoch FROM clock_timestamp() - t0) * 1e3);
	t0 := clock_timestamp();
	SELECT count(datacore.ollama_embed(t)) INTO n FROM unnest(texts) t;
	INSERT INTO emb VALUES ('per_text', $r, extract(epoch FROM clock_timestamp() - t0) * 1e3);
END \$\$;
SQL
done

psql -qX -d "$DB" -c "DELETE FROM lat WHERE round = 0" -c "DELETE FROM emb WHERE round = 0" >/dev/null
psql -qX -d "$DB" <<SQL
\\pset footer off
\\echo '== per-call overhead against the nginx stub: $N ollama_generate() calls vs libcurl keep-alive, $ROUNDS rounds'
SELECT who, count(*) AS calls,
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 1) AS median_us,
	   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY us)::numeric, 1) AS p90_us
FROM lat GROUP BY who ORDER BY who DESC;
SELECT round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM lat WHERE who = 'sql')::numeric
	/ (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM lat WHERE who = 'c')::numeric, 3)
	AS "ratio sql/c (goal <= 1.25)";
\\echo '== embeddings: $M short texts, batched (embed_batch_size 64) vs one call per text'
SELECT who, array_agg(round(ms::numeric, 1) ORDER BY round) AS rounds_ms,
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS median_ms
FROM emb GROUP BY who ORDER BY who;
SELECT round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM emb WHERE who = 'per_text')::numeric
	/ (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM emb WHERE who = 'batched')::numeric, 1)
	AS "speedup batched (goal >= 10)";
SQL
psql -qXAt -F $'\t' -d "$DB" <<SQL
SELECT 'RESULT', 'ollama_generate() per call against the nginx stub, us, vs raw libcurl keep-alive (goal <= 1.25)',
	round(s::numeric, 1), round(c::numeric, 1), round((s / c)::numeric, 2)
FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FILTER (WHERE who = 'sql') AS s,
			 percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FILTER (WHERE who = 'c') AS c FROM lat) m;
SELECT 'RESULT', 'ollama_embed() of 10k texts, batched vs one call per text, ms (goal >= 10)',
	round(b::numeric, 1), round(p::numeric, 1), round((p / b)::numeric, 1)
FROM (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE who = 'batched') AS b,
			 percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE who = 'per_text') AS p FROM emb) m;
SQL
