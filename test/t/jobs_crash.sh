#!/bin/bash
# Crash safety: a job that succeeded is never run again; a job that was
# running when the server stopped with `pg_ctl stop -m immediate` (no
# shutdown, no transaction end: what a crash leaves) runs again after the
# restart.  The launcher looks at every database when it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/t/lib/jobs.sh
trap jobs_cleanup EXIT
jobs_setup

pg_ctl_as_pg() {
    local pg_ctl
    pg_ctl="$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)/pg_ctl"
    if (( EUID == 0 )); then runuser -u postgres -- "$pg_ctl" "$@"; else "$pg_ctl" "$@"; fi
}

done_id=$(q -c "SELECT datacore.ollama_generate_async('done before')")
q -c "SELECT datacore.job_wait($done_id, '20 seconds')" >/dev/null

ollama_fault POST '{"mode": "hang", "path": "/api/generate"}'
hung_id=$(q -c "SELECT datacore.ollama_generate_async('in flight')")
wait_for "SELECT state = 'running' FROM datacore.jobs WHERE id = $hung_id" 20
for _ in $(seq 100); do
    ollama_log | jq -e 'select(.body.prompt == "in flight")' >/dev/null && break
    sleep 0.05
done
# the test cluster commits asynchronously: one synchronous commit that wrote
# WAL flushes everything before it, so the succeeded and running rows (and
# the extension) are in the WAL the crash recovery replays
q -c "SET synchronous_commit = on; CREATE TEMP TABLE flush_wal ()" >/dev/null

pg_ctl_as_pg stop -D "$DC_STATE_DIR/pgdata" -m immediate -w -s
ollama_fault DELETE
test/services start postgres >/dev/null 2>&1

wait_for "SELECT state = 'succeeded' FROM datacore.jobs WHERE id = $hung_id" 30
check "the interrupted job ran again and succeeded" '"echo: in flight"' \
    "$(q -c "SELECT result FROM datacore.jobs WHERE id = $hung_id")"
check "its interrupted run was not counted" "1" "$(q -c "SELECT attempts FROM datacore.jobs WHERE id = $hung_id")"
log=$(ollama_log | jq -r 'select(.path == "/api/generate") | .body.prompt' | sort | uniq -c | awk '{$1=$1}1' | paste -sd,)
check "requests: the finished job once, the interrupted one twice" "1 done before,2 in flight" "$log"
check "the finished job kept its result" "succeeded" "$(q -c "SELECT state FROM datacore.jobs WHERE id = $done_id")"
exit $failed
