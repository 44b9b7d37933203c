#!/bin/bash
# RAG pipelines survive pg_dump and restore: the catalog rows (source, owner,
# watermark, chunking and capture settings), their state (rag_rows,
# rag_queue, rag_errors) and the capture triggers come back, and so does
# row-level security on them.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres PGOPTIONS="-c client_min_messages=warning"
src=regress_rag_dump_src dst=regress_rag_dump_dst role=regress_rag_dump_user
cleanup() {
    psql -X -q -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" \
        -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

psql -X -q -v ON_ERROR_STOP=1 -c "CREATE ROLE $role" -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
psql -X -q -v ON_ERROR_STOP=1 -d $src >/dev/null <<SQL
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT');
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT');
GRANT USAGE ON SCHEMA datacore TO $role;
GRANT USAGE ON FOREIGN SERVER ollama, qdrant TO $role;
CREATE SCHEMA app;
CREATE TABLE app.docs (id uuid PRIMARY KEY, body text, updated timestamptz NOT NULL);
GRANT USAGE ON SCHEMA app TO $role;
GRANT SELECT ON app.docs TO $role;
SET ROLE $role;
SELECT datacore.rag_create('docs', 'app.docs', 'id', 'body', 'updated', 'regress_rag_dump',
                           payload_columns => '{updated}', batch_size => 8);
UPDATE datacore.rag_pipelines SET last_updated = '2026-01-02T03:04:05.123456+00:00',
       last_id = '00000000-0000-0000-0000-000000000007', rows_synced = 7;
INSERT INTO datacore.rag_rows (pipeline, row_id, chunks) VALUES ('docs', '00000000-0000-0000-0000-000000000007', 3);
INSERT INTO datacore.rag_errors (pipeline, row_id, error, sqlstate, attempts)
    VALUES ('docs', '00000000-0000-0000-0000-000000000008', 'refused', '22023', 2);
RESET ROLE;
CREATE TABLE app.notes (id int PRIMARY KEY, body text);
ALTER TABLE app.notes OWNER TO $role;
SET ROLE $role;
SELECT datacore.rag_create('notes', 'app.notes', 'id', 'body', NULL, 'regress_rag_dump_notes',
                           capture => 'trigger', chunker => 'recursive', chunk_size => 200,
                           chunk_overlap => 20, template => 'note: \$chunk', max_batch_chars => 5000);
INSERT INTO app.notes VALUES (1, 'queued'), (2, 'queued too');
SQL

pg_dump -d $src | psql -X -q -v ON_ERROR_STOP=1 -d $dst >/dev/null

q="SELECT name, owner, source, payload_columns, batch_size, last_updated::timestamptz = '2026-01-02T03:04:05.123456+00:00',
          last_id, rows_synced FROM datacore.rag_pipelines WHERE name = 'docs'"
want=$(psql -X -At -d $src -c "$q")
got=$(psql -X -At -d $dst -c "$q")
[[ -n $want && $got == "$want" ]] || { echo "FAIL: restored pipeline differs"; diff <(echo "$want") <(echo "$got") || true; exit 1; }
[[ $got == "docs|$role|app.docs|{updated}|8|t|00000000-0000-0000-0000-000000000007|7" ]] \
    || { echo "FAIL: unexpected pipeline row: $got"; exit 1; }

# still visible to its owner only
other=$(psql -X -q -At -d $dst -c "CREATE ROLE regress_rag_dump_other" \
    -c "GRANT USAGE ON SCHEMA datacore TO regress_rag_dump_other" \
    -c "SET ROLE regress_rag_dump_other" -c "SELECT count(*) FROM datacore.rag_pipelines" -c "RESET ROLE" \
    -c "REVOKE USAGE ON SCHEMA datacore FROM regress_rag_dump_other" \
    -c "DROP ROLE regress_rag_dump_other" 2>&1 | tr '\n' ' ')
mine=$(psql -X -q -At -d $dst -c "SET ROLE $role" -c "SELECT count(*) FROM datacore.rag_pipelines" | tail -n 1)
[[ $other == "0 " && $mine == 2 ]] || { echo "FAIL: row-level security after restore: other '$other', owner '$mine'"; exit 1; }

# the state tables and the capture triggers
q="SELECT (SELECT string_agg(concat_ws(',', name, chunker, chunk_size, chunk_overlap, template, capture, max_batch_chars), ';' ORDER BY name)
           FROM datacore.rag_pipelines)
       || '|' || (SELECT string_agg(pipeline || ':' || row_id || ':' || chunks, ';' ORDER BY row_id) FROM datacore.rag_rows)
       || '|' || (SELECT string_agg(pipeline || ':' || row_id, ';' ORDER BY row_id) FROM datacore.rag_queue)
       || '|' || (SELECT string_agg(concat_ws(':', pipeline, row_id, error, sqlstate, attempts), ';') FROM datacore.rag_errors)"
want=$(psql -X -At -d $src -c "$q")
got=$(psql -X -At -d $dst -c "$q")
[[ $got == "$want" && $got == *"notes,recursive,200,20,note: \$chunk,trigger,5000"*"|notes:1;notes:2|docs:"*":refused:22023:2" ]] \
    || { echo "FAIL: restored state differs: want '$want', got '$got'"; exit 1; }
psql -X -q -At -v ON_ERROR_STOP=1 -d $dst -c "INSERT INTO app.notes VALUES (3, 'after restore')" >/dev/null
queued=$(psql -X -At -d $dst -c "SELECT count(*) FROM datacore.rag_queue WHERE pipeline = 'notes'")
[[ $queued == 3 ]] || { echo "FAIL: capture trigger after restore: $queued queued"; exit 1; }
echo "ok: RAG pipelines, their watermarks, state and capture triggers survive pg_dump and restore"
