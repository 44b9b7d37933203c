#!/bin/bash
# RAG pipelines made under 0.1.0 keep their owner column as their owner
# across ALTER EXTENSION datacore UPDATE, and the 0.2.0 rule holds for them
# at once: a member of the owning role, who could change and sync the
# pipeline under 0.1.0, no longer can; the owner still can.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres PGOPTIONS="-c client_min_messages=warning"
db=regress_rag_upgrade owner=regress_rag_upgrade_team member=regress_rag_upgrade_member
old=$(ls sql/datacore--*.sql | sed -n 's,^sql/datacore--\([0-9.]*\)\.sql$,\1,p' | sort -V | head -n 1)

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d $db "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
cleanup() {
    psql -X -q -c "DROP DATABASE IF EXISTS $db" -c "DROP ROLE IF EXISTS $member" \
        -c "DROP ROLE IF EXISTS $owner" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" -c "CREATE ROLE $owner" -c "CREATE ROLE $member IN ROLE $owner"
q >/dev/null <<SQL
CREATE EXTENSION datacore VERSION '$old';
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT');
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT');
GRANT USAGE ON SCHEMA datacore TO $owner;
GRANT USAGE ON FOREIGN SERVER ollama, qdrant TO $owner;
CREATE TABLE docs (id int PRIMARY KEY, body text, updated int NOT NULL);
GRANT SELECT ON docs TO $owner;
SET ROLE $owner;
SELECT datacore.rag_create('team_docs', 'docs', 'id', 'body', 'updated', 'regress_rag_upgrade');
RESET ROLE;
SET ROLE $member;
SELECT datacore.rag_create('member_docs', 'docs', 'id', 'body', 'updated', 'regress_rag_upgrade');
SQL

# under the old version a member changes the owning role's pipeline
[[ $(q -c "SET ROLE $member" -c "WITH u AS (UPDATE datacore.rag_pipelines SET batch_size = 7
        WHERE name = 'team_docs' RETURNING 1) SELECT count(*) FROM u") == 1 ]] \
    || fail "under $old a member could not update the owner's pipeline (the test no longer shows the old rule)"

q -c "ALTER EXTENSION datacore UPDATE" >/dev/null
got=$(q -c "SELECT string_agg(name || '=' || owner, ' ' ORDER BY name) FROM datacore.rag_pipelines")
[[ $got == "member_docs=$member team_docs=$owner" ]] || fail "owners after the update: '$got'"

got=$(q -c "SET ROLE $member" -c "WITH u AS (UPDATE datacore.rag_pipelines SET batch_size = 8
        WHERE name = 'team_docs' RETURNING 1) SELECT count(*) FROM u")
[[ $got == 0 ]] || fail "after the update a member still updated the owner's pipeline"
out=$(psql -X -q -At -d $db -v VERBOSITY=sqlstate -c "SET ROLE $member" \
        -c "SELECT datacore.rag_reset('team_docs')" 2>&1) || true
[[ $out == "ERROR:  42501" ]] || fail "after the update a member's rag_reset gave '$out'"
[[ $(q -c "SET ROLE $member" -c "SELECT count(*) FROM datacore.rag_pipelines") == 2 ]] \
    || fail "after the update a member no longer sees its group's pipeline"

# the owners still act on their own pipelines
q -c "SET ROLE $owner" -c "SELECT datacore.rag_reset('team_docs')" >/dev/null
q -c "SET ROLE $member" -c "SELECT datacore.rag_drop('member_docs')" >/dev/null
got=$(q -c "SELECT string_agg(name || ' ' || batch_size, ',') FROM datacore.rag_pipelines")
[[ $got == "team_docs 7" ]] || fail "after the owners' calls: '$got'"
echo "ok: 0.1.0 pipelines keep their owner on update, and only the owner acts on them afterwards"
