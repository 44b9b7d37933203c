#!/bin/bash
# The circuit breaker across backends: closed -> open -> exactly one probe
# (the Ollama stand-in's request log shows one request while several
# sessions call at once) -> closed; a failed probe reopens it; a probe whose
# backend is terminated reopens it; a probe that never reports (its backend
# stopped with SIGSTOP) loses its lease, and another call probes.
# pg_regress runs one session, hence this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
# a database of its own: a fresh CREATE EXTENSION of this build
export PGDATABASE=regress_breaker_t
PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS regress_breaker_t" -c "CREATE DATABASE regress_breaker_t" >/dev/null
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
BASE=http://127.0.0.1:$DC_OLLAMA_PORT/_test

fault() { curl -sS -X POST -H 'Content-Type: application/json' --data-raw "$1" "$BASE/fault" >/dev/null; }
nofault() { curl -sS -X DELETE "$BASE/fault" >/dev/null; }
clear_log() { curl -sS -X DELETE "$BASE/log" >/dev/null; }
# requests the stand-in received for /api/version since the last clear
requests() { curl -sS "$BASE/log" | grep -c '"/api/version"' || true; }
sql() { "${PSQL[@]}" -c "$1"; }
state() { sql "SELECT coalesce((SELECT state || ' ' || failures FROM datacore.breakers WHERE server = 'regress_brk'), 'none')"; }

STATE=$(mktemp -d)
stopped_pid=
cleanup() {
    [[ -n $stopped_pid ]] && kill -CONT "$stopped_pid" 2>/dev/null || true
    nofault
    "${PSQL[@]}" -c "DROP SERVER IF EXISTS regress_brk CASCADE" >/dev/null 2>&1 || true
    rm -rf "$STATE"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS regress_breaker_t WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

failed=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [[ $2 == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected '$2', got '$3'"; failed=1; fi
}

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS regress_brk CASCADE;
CREATE SERVER regress_brk FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', breaker_threshold '2',
             breaker_cooldown_ms '1000', connect_timeout_ms '500', timeout_ms '5000');
SQL

# call_bg NAME: one ollama_version() call in a background session; its
# output (the version or the error with SQLSTATE) goes to $STATE/NAME
pids=()
call_bg() {
    PGAPPNAME=$1 psql -X -At -v VERBOSITY=verbose \
        -c "SELECT datacore.ollama_version('regress_brk')" >"$STATE/$1" 2>&1 &
    pids+=($!)
}
wait_all() { local p; for p in "${pids[@]}"; do wait "$p" || true; done; pids=(); }
# how many of the outputs NAME... contain PATTERN
count_out() { local pat=$1 n=0 f; shift; for f in "$@"; do grep -q -- "$pat" "$STATE/$f" && n=$((n + 1)); done; echo $n; }
# waiting APP: until session APP waits for the server (it holds the probe)
waiting() {
    local i
    for i in $(seq 100); do
        [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND wait_event_type = 'Extension'") == 1 ]] && return 0
        sleep 0.05
    done
    echo "FAIL: session $1 never started waiting"; failed=1
}
trip() {
    fault '{"mode": "status", "status": 500}'
    sql "SELECT datacore.ollama_version('regress_brk')" >/dev/null 2>&1 || true
    sql "SELECT datacore.ollama_version('regress_brk')" >/dev/null 2>&1 || true
}

# --- closed -> open
trip
check "two 500s open the breaker" "open 2" "$(state)"
clear_log
out=$(sql "SELECT datacore.ollama_version('regress_brk')" 2>&1 || true)
check "an open breaker fails fast without a request" "0" "$(requests)"
[[ $out == *"next probe call is in 1 s"* ]] && echo "ok: the hint gives the seconds until the probe" ||
    { echo "FAIL: hint: $out"; failed=1; }

# --- half-open: four sessions at once, exactly one probe reaches the server
sleep 1.1
fault '{"mode": "delay", "ms": 1500}'
clear_log
for n in a b c d; do call_bg "probe_$n"; done
wait_all
check "four sessions after the cooldown: one request reached the server" "1" "$(requests)"
check "the probe succeeded" "1" "$(count_out '^0\.' probe_a probe_b probe_c probe_d)"
check "the others failed fast with 08006 while it probed" "3" \
    "$(count_out 'ERROR:  08006: .*was not attempted' probe_a probe_b probe_c probe_d)"
check "they were told another call is probing" "3" \
    "$(count_out 'another call is probing' probe_a probe_b probe_c probe_d)"
check "the probe's success closed the breaker" "none" "$(state)"
nofault
clear_log
call_bg after_a; call_bg after_b; wait_all
check "closed again: both sessions reach the server" "2" "$(requests)"

# --- a failed probe reopens the breaker for another cooldown
trip
sleep 1.1
sql "ALTER SERVER regress_brk OPTIONS (SET timeout_ms '800')"
fault '{"mode": "hang"}'
clear_log
for n in a b c; do call_bg "fail_$n"; done
wait_all
check "a hanging server gets one probe from three sessions" "1" "$(requests)"
check "the probe timed out" "1" "$(count_out 'did not answer' fail_a fail_b fail_c)"
check "the failed probe reopened the breaker" "open 3" "$(state)"
check "for a whole new cooldown" "t" \
    "$(sql "SELECT next_probe_at > now() + interval '0.8 s' FROM datacore.breakers WHERE server = 'regress_brk'")"

# --- a probe whose backend is terminated does not leave it half-open
sql "ALTER SERVER regress_brk OPTIONS (SET timeout_ms '60000')"
sleep 1.1
call_bg term
waiting term
check "the probe holds the breaker half-open" "half-open 3" "$(state)"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'term'" >/dev/null
wait_all
check "terminating the probing backend reopens the breaker" "open 4" "$(state)"

# --- a probe that never reports loses its lease (connect 500 ms + answer
# 1000 ms + 1 s): another call probes after that, not never
sql "ALTER SERVER regress_brk OPTIONS (SET timeout_ms '1000')"
sleep 1.1
call_bg stuck
waiting stuck
stopped_pid=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'stuck'")
if [[ -n $stopped_pid ]] && kill -STOP "$stopped_pid" 2>/dev/null; then
    nofault
    clear_log
    out=$(sql "SELECT datacore.ollama_version('regress_brk')" 2>&1 || true)
    [[ $out == *"another call is probing"* ]] && echo "ok: while the lease runs, calls fail fast" ||
        { echo "FAIL: during the lease: $out"; failed=1; }
    sleep 2.6
    out=$(sql "SELECT datacore.ollama_version('regress_brk')" 2>&1 || true)
    check "after the lease another call probed and closed the breaker" "0.5.7 none" "$out $(state)"
    kill -CONT "$stopped_pid"
    stopped_pid=
    wait_all
else
    echo "skip: cannot stop the backend (not its owner)"
    wait_all
fi

exit $failed
