#!/bin/bash
# A late-committing writer — a transaction that started before a sync and
# commits after it — is embedded by a trigger-capture pipeline, while a
# watermark pipeline on the same table misses it (the hole trigger capture
# closes).  Needs two sessions, hence a script rather than pg_regress.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
db=regress_rag_capture
export PGDATABASE=$db
cleanup() {
    [[ -n ${W_PID:-} ]] && kill "$W_PID" 2>/dev/null || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', embedding_model 'nomic-embed-text');
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT');
SELECT datacore.qdrant_drop_collection(c, true) FROM unnest(ARRAY['regress_cap_trig', 'regress_cap_wm']) c;
CREATE TABLE docs (id int PRIMARY KEY, body text, updated timestamptz NOT NULL DEFAULT now());
SELECT datacore.rag_create('trig', 'docs', 'id', 'body', NULL, 'regress_cap_trig', capture => 'trigger');
SELECT datacore.rag_create('wm', 'docs', 'id', 'body', 'updated', 'regress_cap_wm');
SQL
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# the writer begins (its now() is fixed here) and inserts, without committing
coproc W { psql -X -q -At -v ON_ERROR_STOP=1 2>&1; }
W_PID=$W_PID
echo "BEGIN; INSERT INTO docs (id, body) VALUES (2, 'the late writer''s row'); SELECT 'written';" >&"${W[1]}"
read -r -t 20 line <&"${W[0]}"; [[ $line == written ]] || { echo "FAIL: writer: $line"; exit 1; }
# a row committed later, with a later updated value; both pipelines sync it
q "INSERT INTO docs (id, body, updated) VALUES (1, 'an early row', clock_timestamp() + interval '1 second')"
[[ $(q "SELECT datacore.rag_sync('trig')") == 1 && $(q "SELECT datacore.rag_sync('wm')") == 1 ]] \
    || { echo "FAIL: first syncs"; exit 1; }
# now the writer commits: its row's updated value is below the watermark
echo "COMMIT; SELECT 'committed';" >&"${W[1]}"
read -r -t 20 line <&"${W[0]}"; [[ $line == committed ]] || { echo "FAIL: writer commit: $line"; exit 1; }
trig=$(q "SELECT datacore.rag_sync('trig')")
wm=$(q "SELECT datacore.rag_sync('wm')")
counts=$(q "SELECT datacore.qdrant_count('regress_cap_trig') || ' ' || datacore.qdrant_count('regress_cap_wm')")
[[ $trig == 1 && $counts == "2 1" ]] \
    || { echo "FAIL: late commit: trigger sync sent $trig, watermark sync sent $wm, points (trigger, watermark): $counts"; exit 1; }
q "SELECT datacore.rag_drop(name, true) FROM datacore.rag_pipelines" >/dev/null
echo "ok: a late-committing writer is embedded by trigger capture (the watermark pipeline misses it)"
