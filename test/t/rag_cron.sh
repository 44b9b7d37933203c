#!/bin/bash
# rag_schedule with pg_cron: in the cron database (postgres) a pipeline's
# sync becomes a cron.job row whose command, run as is, syncs the pipeline;
# scheduling again updates the same job; rag_unschedule and rag_drop remove
# it.  DC_RAG_CRON_WAIT=1 also lets pg_cron fire the job once (up to ~70 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres PGOPTIONS="-c client_min_messages=warning"
pipeline=regress_rag_cron
collection=regress_rag_cron

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

had_datacore=$(q -c "SELECT count(*) FROM pg_extension WHERE extname = 'datacore'")
# an extension left in this long-lived database by an older build lacks the
# functions under test: replace it (and what hangs on it)
if [[ $had_datacore == 1 && -z $(q -c "SELECT to_regproc('datacore.rag_schedule')") ]]; then
    echo "note: replacing a datacore extension from an older build in database postgres"
    q -c "DROP EXTENSION datacore CASCADE"
    had_datacore=0
fi
had_cron=$(q -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'")

cleanup() {
    psql -X -q -o /dev/null <<SQL >/dev/null 2>&1 || true
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'rag_sync:postgres:$pipeline';
SELECT datacore.rag_drop('$pipeline', drop_collection => true)
  FROM datacore.rag_pipelines WHERE name = '$pipeline';
DROP TABLE IF EXISTS regress_rag_cron_docs;
DROP SERVER IF EXISTS regress_rag_cron_ollama, regress_rag_cron_qdrant CASCADE;
SQL
    [[ $had_datacore == 1 ]] || q -c "DROP EXTENSION IF EXISTS datacore CASCADE" >/dev/null 2>&1 || true
    [[ $had_cron == 1 ]] || q -c "DROP EXTENSION IF EXISTS pg_cron" >/dev/null 2>&1 || true
}
trap cleanup EXIT

q >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS regress_rag_cron_ollama, regress_rag_cron_qdrant CASCADE;
CREATE SERVER regress_rag_cron_ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', embedding_model 'nomic-embed-text');
CREATE SERVER regress_rag_cron_qdrant FOREIGN DATA WRAPPER datacore_qdrant
    OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT');
SELECT datacore.qdrant_drop_collection('$collection', true, 'regress_rag_cron_qdrant');
DROP TABLE IF EXISTS regress_rag_cron_docs;
CREATE TABLE regress_rag_cron_docs (id int PRIMARY KEY, body text, updated timestamptz NOT NULL);
INSERT INTO regress_rag_cron_docs VALUES
    (1, 'cron runs the sync', now()), (2, 'every five minutes', now()), (3, 'without a worker', now());
SELECT datacore.rag_create('$pipeline', 'regress_rag_cron_docs', 'id', 'body', 'updated', '$collection',
                           ollama_server => 'regress_rag_cron_ollama',
                           qdrant_server => 'regress_rag_cron_qdrant');
SQL

jobid=$(q -c "SELECT datacore.rag_schedule('$pipeline', '*/5 * * * *')")
[[ $jobid =~ ^[0-9]+$ ]] || fail "rag_schedule returned '$jobid'"

got=$(q -F '|' -c "SELECT jobname, schedule, command, database, username, active FROM cron.job WHERE jobid = $jobid")
want="rag_sync:postgres:$pipeline|*/5 * * * *|SELECT datacore.rag_sync('$pipeline')|postgres|postgres|t"
[[ $got == "$want" ]] || fail "cron.job row is '$got', expected '$want'"

# scheduling again changes the schedule of the same job
again=$(q -c "SELECT datacore.rag_schedule('$pipeline', '0 * * * *')")
[[ $again == "$jobid" ]] || fail "re-scheduling gave job $again, not $jobid"
got=$(q -c "SELECT count(*) || ' ' || min(schedule) FROM cron.job WHERE jobname = 'rag_sync:postgres:$pipeline'")
[[ $got == "1 0 * * * *" ]] || fail "after re-scheduling: '$got'"

# the job's command, run as pg_cron would run it, syncs the pipeline
command=$(q -c "SELECT command FROM cron.job WHERE jobid = $jobid")
synced=$(q -c "$command")
[[ $synced == 3 ]] || fail "the job's command synced '$synced' rows, expected 3"
count=$(q -c "SELECT datacore.qdrant_count('$collection', server => 'regress_rag_cron_qdrant')")
[[ $count == 3 ]] || fail "collection has $count points after the job's command, expected 3"

if [[ ${DC_RAG_CRON_WAIT:-0} == 1 ]]; then
    q -c "INSERT INTO regress_rag_cron_docs VALUES (4, 'a row for the scheduler', now())" >/dev/null
    q -c "SELECT datacore.rag_schedule('$pipeline', '* * * * *')" >/dev/null
    status=
    for _ in $(seq 1 75); do
        status=$(q -c "SELECT status FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid DESC LIMIT 1")
        [[ $status == succeeded || $status == failed ]] && break
        sleep 1
    done
    [[ $status == succeeded ]] || fail "pg_cron's run of the job ended as '${status:-nothing}': $(q -c \
        "SELECT return_message FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid DESC LIMIT 1")"
    count=$(q -c "SELECT datacore.qdrant_count('$collection', server => 'regress_rag_cron_qdrant')")
    [[ $count == 4 ]] || fail "collection has $count points after pg_cron ran the job, expected 4"
    q -c "DELETE FROM cron.job_run_details WHERE jobid = $jobid" >/dev/null
fi

[[ $(q -c "SELECT datacore.rag_unschedule('$pipeline')") == t ]] || fail "rag_unschedule did not find the job"
[[ $(q -c "SELECT count(*) FROM cron.job WHERE jobid = $jobid") == 0 ]] || fail "the job is still in cron.job"
[[ $(q -c "SELECT datacore.rag_unschedule('$pipeline')") == f ]] || fail "a second rag_unschedule did not return false"

# dropping a pipeline removes its job
jobid=$(q -c "SELECT datacore.rag_schedule('$pipeline', '*/5 * * * *')")
q -c "SELECT datacore.rag_drop('$pipeline', drop_collection => true)" >/dev/null
[[ $(q -c "SELECT count(*) FROM cron.job WHERE jobid = $jobid") == 0 ]] || fail "rag_drop left the job in cron.job"

echo "ok: rag_schedule registers, updates and runs the pipeline's pg_cron job; unschedule and drop remove it"
