#!/bin/bash
# A call to a server that never answers must end promptly on pg_cancel_backend()
# and on pg_terminate_backend(), and leave the other sessions untouched.
# pg_regress cannot cancel its own session, hence this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres

fault() {
    curl -sS -X "$1" -H 'Content-Type: application/json' ${2:+--data-raw "$2"} \
        "http://127.0.0.1:$DC_OLLAMA_PORT/_test/fault" >/dev/null
}

PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS regress_hang CASCADE;
CREATE SERVER regress_hang FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT');
SQL
fault POST '{"mode": "hang"}'
trap 'fault DELETE; psql -X -q -c "DROP SERVER IF EXISTS regress_hang CASCADE" >/dev/null 2>&1 || true' EXIT

# run_hung APP: start a hung call in the background under application_name
# APP; its pid is in $hung_pid (no command substitution: the psql must be a
# child of this shell for `wait` to measure when it ends)
run_hung() {
    PGAPPNAME=$1 psql -X -c "SELECT datacore.ollama_version('regress_hang')" \
        >"$STATE/$1.out" 2>&1 &
    hung_pid=$!
}

wait_active() {
    local app=$1 i
    for i in $(seq 100); do
        [[ $(psql -X -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND state = 'active'") == 1 ]] && return 0
        sleep 0.05
    done
    echo "session $app never became active" >&2
    return 1
}

# interrupt APP FUNCTION PID: send the interrupt; sets $ms to how long the
# hung call took to end after it
interrupt() {
    local app=$1 fn=$2 pid=$3 start end
    start=$(date +%s%N)
    psql -X -Atc "SELECT $fn(pid) FROM pg_stat_activity WHERE application_name = '$app'" >/dev/null
    wait "$pid" || true
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
}

STATE=$(mktemp -d)
failed=0

run_hung regress_cancel
wait_active regress_cancel
sleep 0.3                               # let it sit in the wait
interrupt regress_cancel pg_cancel_backend "$hung_pid"
if grep -q 'canceling statement due to user request' "$STATE/regress_cancel.out" && (( ms < 1000 )); then
    echo "ok: pg_cancel_backend ended the call in ${ms} ms"
else
    echo "FAIL: pg_cancel_backend took ${ms} ms:"; cat "$STATE/regress_cancel.out"; failed=1
fi

run_hung regress_terminate
wait_active regress_terminate
sleep 0.3
interrupt regress_terminate pg_terminate_backend "$hung_pid"
if grep -q 'terminating connection due to administrator command' "$STATE/regress_terminate.out" && (( ms < 1000 )); then
    echo "ok: pg_terminate_backend ended the call in ${ms} ms"
else
    echo "FAIL: pg_terminate_backend took ${ms} ms:"; cat "$STATE/regress_terminate.out"; failed=1
fi

# the server is still healthy for everybody else
fault DELETE
if [[ $(psql -X -Atc "SELECT datacore.ollama_version('regress_hang')") != "" ]]; then
    echo "ok: a new session works afterwards"
else
    echo "FAIL: a new session cannot call the server"; failed=1
fi
rm -rf "$STATE"
exit $failed
