# Sourced by test/t/jobs_*.sh: a scratch database with the extension and an
# Ollama server on the stand-in, and helpers for the stand-in's log and fault
# switch.
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
JOBS_DB=${JOBS_DB:-regress_jobs_t}

q() { psql -X -At -v ON_ERROR_STOP=1 -d "$JOBS_DB" "$@"; }

ollama_fault() {
    curl -sS -X "$1" -H 'Content-Type: application/json' ${2:+--data-raw "$2"} \
        "http://127.0.0.1:$DC_OLLAMA_PORT/_test/fault" >/dev/null
}
ollama_clear_log() { curl -sS -X DELETE "http://127.0.0.1:$DC_OLLAMA_PORT/_test/log" >/dev/null; }
ollama_log() { curl -sS "http://127.0.0.1:$DC_OLLAMA_PORT/_test/log"; }

jobs_setup() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $JOBS_DB WITH (FORCE)" -c "CREATE DATABASE $JOBS_DB"
    q -q <<SQL
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', model 'llama3.2' ${JOBS_SERVER_OPTIONS:-});
SQL
    ollama_fault DELETE
    ollama_clear_log
}

jobs_cleanup() {
    [[ ${JOBS_KEEP:-0} == 1 ]] && return 0
    ollama_fault DELETE || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $JOBS_DB WITH (FORCE)" >/dev/null 2>&1 || true
}

# wait_for SQL SECONDS: until the query returns t
wait_for() {
    local sql=$1 secs=${2:-30} i
    for ((i = 0; i < secs * 20; i++)); do
        [[ $(q -c "$sql") == t ]] && return 0
        sleep 0.05
    done
    echo "timed out after ${secs}s waiting for: $sql" >&2
    return 1
}

failed=0
check() {
    # check NAME EXPECTED ACTUAL
    if [[ $2 == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected '$2', got '$3'"; failed=1; fi
}
