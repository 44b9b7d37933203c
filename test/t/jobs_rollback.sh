#!/bin/bash
# Enqueueing is part of the transaction: a rolled-back enqueue (whole
# transaction or savepoint) never reaches the server, a committed one does,
# as the role that enqueued it (its user mapping's token on the wire).  A
# job that ends is announced with NOTIFY datacore_jobs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/t/lib/jobs.sh
trap jobs_cleanup EXIT
jobs_setup

q -q <<'SQL'
CREATE ROLE regress_jobs_owner;
GRANT USAGE ON SCHEMA datacore TO regress_jobs_owner;
GRANT USAGE ON FOREIGN SERVER ollama TO regress_jobs_owner;
CREATE USER MAPPING FOR regress_jobs_owner SERVER ollama OPTIONS (bearer_token 'owner-token');
SQL
trap 'jobs_cleanup; psql -X -q -d postgres -c "DROP ROLE IF EXISTS regress_jobs_owner" >/dev/null 2>&1 || true' EXIT

q -q >/dev/null <<'SQL'
BEGIN;
SELECT datacore.ollama_generate_async('rolled back');
ROLLBACK;
BEGIN;
SELECT datacore.ollama_generate_async('kept');
SAVEPOINT s;
SELECT datacore.ollama_generate_async('in a rolled back savepoint');
ROLLBACK TO SAVEPOINT s;
SET LOCAL ROLE regress_jobs_owner;
SELECT datacore.ollama_generate_async('by the owner');
COMMIT;
SQL
wait_for "SELECT count(*) = 2 FROM datacore.jobs WHERE state = 'succeeded'" 20
# a last job, so that anything sent late would be in the log before we read it
last=$(q -c "SELECT datacore.ollama_generate_async('last')")
q -c "SELECT datacore.job_wait($last, '20 seconds')" >/dev/null

sent=$(ollama_log | jq -r 'select(.path == "/api/generate") | .body.prompt' | sort | paste -sd,)
check "only committed jobs were sent" "by the owner,kept,last" "$sent"
check "jobs rows: the rolled-back ones never existed" "3" "$(q -c "SELECT count(*) FROM datacore.jobs")"
auth=$(ollama_log | jq -r 'select(.body.prompt == "by the owner") | .headers.authorization')
check "the owner's job used the owner's user mapping" "Bearer owner-token" "$auth"
auth=$(ollama_log | jq -r 'select(.body.prompt == "kept") | .headers.authorization // "none"')
check "the superuser's job used no mapping" "none" "$auth"
check "owners recorded" "regress_jobs_owner:by the owner,postgres:kept,postgres:last" \
    "$(q -c "SELECT string_agg(owner::text || ':' || (args->>'prompt'), ',' ORDER BY args->>'prompt') FROM datacore.jobs")"

# USAGE revoked in the enqueuing transaction: the worker, woken at that
# commit, must see the REVOKE (its invalidation is sent just after the
# commit becomes visible); a race, so tried many times
ollama_clear_log
q -q >/dev/null <<'SQL'
CREATE TABLE revoked_jobs (id bigint);
GRANT INSERT ON revoked_jobs TO regress_jobs_owner;
SQL
for i in $(seq 40); do
    q -q >/dev/null <<SQL
GRANT USAGE ON FOREIGN SERVER ollama TO regress_jobs_owner;
BEGIN;
SET LOCAL ROLE regress_jobs_owner;
INSERT INTO revoked_jobs SELECT datacore.ollama_generate_async('revoked $i');
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER ollama FROM regress_jobs_owner;
COMMIT;
SQL
done
wait_for "SELECT count(*) = 40 FROM datacore.jobs WHERE id IN (SELECT id FROM revoked_jobs) AND finished_at IS NOT NULL" 30
check "40 jobs whose USAGE was revoked with the enqueue: all dead with 42501" "40" \
    "$(q -c "SELECT count(*) FROM datacore.jobs WHERE id IN (SELECT id FROM revoked_jobs) AND state = 'dead' AND last_error->>'sqlstate' = '42501'")"
check "none of them was sent" "0" "$(ollama_log | jq -c 'select(.path == "/api/generate")' | wc -l)"

# a job that ends is announced on datacore_jobs with its id; psql prints
# notifications that arrived after each command
out=$(q <<'SQL'
LISTEN datacore_jobs;
SELECT datacore.ollama_generate_async('notify me') AS id \gset
SELECT datacore.job_wait(:id, '20 seconds') IS NOT NULL AS done;
SELECT 'id=' || :id;
SQL
)
id=$(sed -n 's/^id=//p' <<<"$out")
if grep -q "notification \"datacore_jobs\" with payload \"$id\" received" <<<"$out"; then
    echo "ok: NOTIFY datacore_jobs carried the id of the job that ended"
else
    echo "FAIL: no notification for job $id:"; echo "$out"; failed=1
fi
exit $failed
