#!/bin/bash
# RAG pipelines survive pg_dump and restore: the catalog rows (source, owner,
# watermark) come back, and so does row-level security on them.
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
SQL

pg_dump -d $src | psql -X -q -v ON_ERROR_STOP=1 -d $dst >/dev/null

q="SELECT name, owner, source, payload_columns, batch_size, last_updated::timestamptz = '2026-01-02T03:04:05.123456+00:00',
          last_id, rows_synced FROM datacore.rag_pipelines"
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
[[ $other == "0 " && $mine == 1 ]] || { echo "FAIL: row-level security after restore: other '$other', owner '$mine'"; exit 1; }
echo "ok: RAG pipelines and their watermarks survive pg_dump and restore"
