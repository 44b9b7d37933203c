#!/bin/bash
# The fault matrix: every service (Ollama, Qdrant, S3, Redis) against every
# fault a remote end can commit.  For each cell, in one backend: the call
# under the fault must fail with a real SQLSTATE (never XX000), the backend
# must survive (same pid before and after), and once the fault is lifted the
# next call must succeed.  What happened — SQLSTATE, message, how many
# attempts, whether the circuit breaker counted it — is written as a table;
# the test fails if that table differs from the one in docs/reliability.md.
#
#   test/fault/matrix.sh            run against the stack, compare with the doc
#   test/fault/matrix.sh --write    run and rewrite the table in the doc
#
# Needs the stack (test/services start) with this build installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres

DOC=docs/reliability.md
WRITE=0
[[ ${1:-} == --write ]] && WRITE=1

STATE=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}" $(cat "$STATE"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    psql -X -q -c "DROP SERVER IF EXISTS fault_ollama, fault_qdrant, fault_s3, fault_redis,
        fault_ollama_down, fault_qdrant_down, fault_s3_down, fault_redis_down CASCADE" >/dev/null 2>&1 || true
    for s in ollama qdrant s3; do test/fault/lift.sh fault "$(port_of "$s")" 2>/dev/null || true; done
    rm -rf "$STATE"
}
trap cleanup EXIT

port_of() {
    case $1 in
        ollama) echo "$DC_OLLAMA_PORT" ;;
        qdrant) echo "$DC_QDRANT_PORT" ;;
        s3) echo "$DC_S3_PORT" ;;
        redis) echo "$resp_control" ;;
    esac
}

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Redis: the scripted RESP server (a real redis-server cannot misbehave on demand).
echo '{"replies": {"GET": "$5\r\nvalue\r\n"}}' >"$STATE/resp.json"
node test/servers/resp.js "$STATE/resp.json" >"$STATE/resp.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$STATE/resp.log" && break; sleep 0.05; done
read -r resp_port resp_control < <(sed -n 's/^resp listening on 127.0.0.1:\([0-9]*\) control 127.0.0.1:\([0-9]*\)$/\1 \2/p' "$STATE/resp.log")
[[ -n ${resp_control:-} ]] || { cat "$STATE/resp.log" >&2; exit 1; }

declare -A down_port
for s in ollama qdrant s3 redis; do down_port[$s]=$(free_port); done

# Every fault server retries twice (HTTP; Redis takes no retries: a command is
# never sent twice) and counts failures without ever opening (threshold 1000),
# so the table shows what is retried and what is counted.
common="timeout_ms '2500', connect_timeout_ms '1000', breaker_threshold '1000', max_response_bytes '1048576'"
http="$common, retries '2'"
PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS fault_ollama, fault_qdrant, fault_s3, fault_redis,
    fault_ollama_down, fault_qdrant_down, fault_s3_down, fault_redis_down CASCADE;
CREATE SERVER fault_ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', model 'llama3.2', $http);
CREATE SERVER fault_ollama_down FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:${down_port[ollama]}', model 'llama3.2', $http);
CREATE SERVER fault_qdrant FOREIGN DATA WRAPPER datacore_qdrant
    OPTIONS (url 'http://127.0.0.1:$DC_QDRANT_PORT', $http);
CREATE SERVER fault_qdrant_down FOREIGN DATA WRAPPER datacore_qdrant
    OPTIONS (url 'http://127.0.0.1:${down_port[qdrant]}', $http);
CREATE SERVER fault_s3 FOREIGN DATA WRAPPER datacore_s3
    OPTIONS (url 'http://127.0.0.1:$DC_S3_PORT', region 'us-east-1', $http);
CREATE SERVER fault_s3_down FOREIGN DATA WRAPPER datacore_s3
    OPTIONS (url 'http://127.0.0.1:${down_port[s3]}', region 'us-east-1', $http);
CREATE USER MAPPING FOR PUBLIC SERVER fault_s3
    OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
CREATE USER MAPPING FOR PUBLIC SERVER fault_s3_down
    OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
CREATE SERVER fault_redis FOREIGN DATA WRAPPER datacore_redis
    OPTIONS (host '127.0.0.1', port '$resp_port', $common);
CREATE SERVER fault_redis_down FOREIGN DATA WRAPPER datacore_redis
    OPTIONS (host '127.0.0.1', port '${down_port[redis]}', $common);
SELECT datacore.s3_create_bucket('fault-matrix', 'fault_s3');
SQL

# The call each service is tested with (SERVER is replaced).
declare -A call=(
    [ollama]="SELECT 'ok=' || left(datacore.ollama_generate('hi', server => 'SERVER'), 8)"
    [qdrant]="SELECT 'ok=' || count(*) FROM datacore.qdrant_collections('SERVER')"
    [s3]="SELECT 'ok=' || count(*) FROM datacore.s3_list('fault-matrix', '', 'SERVER')"
    [redis]="SELECT 'ok=' || datacore.redis_get('k', 'SERVER')"
)

# fault name -> the switch per service (HTTP stand-ins | RESP server)
FAULTS=(down reset drop hang status500 status503 truncate malformed oversize content_type trickle)
declare -A label=(
    [down]="server down (nothing listening)"
    [reset]="connection refused after accept"
    [drop]="connection dropped mid-response"
    [hang]="no answer within the timeout"
    [status500]="HTTP 500 (Redis: -ERR)"
    [status503]="503 with Retry-After (Redis: -LOADING)"
    [truncate]="truncated body"
    [malformed]="malformed JSON / XML / RESP"
    [oversize]="oversized body"
    [content_type]="wrong content type (Redis: wrong reply type)"
    [trickle]="slow trickle (1 byte/s)"
)
declare -A http_switch=(
    [reset]='{"mode":"reset"}'
    [drop]='{"mode":"truncate"}'
    [hang]='{"mode":"hang"}'
    [status500]='{"mode":"status","status":500}'
    [status503]='{"mode":"status","status":503,"retry_after":1}'
    [truncate]='{"mode":"short"}'
    [malformed]='{"mode":"malformed"}'
    [oversize]='{"mode":"oversize","bytes":4194304}'
    [content_type]='{"mode":"content_type"}'
    [trickle]='{"mode":"trickle","ms":1000}'
)
declare -A resp_switch=(
    [reset]='{"mode":"reset"}'
    [drop]='{"mode":"midreset","path":"GET"}'
    [hang]='{"mode":"hang","path":"GET"}'
    [status500]='{"mode":"reply","reply":"-ERR injected failure\r\n","path":"GET"}'
    [status503]='{"mode":"reply","reply":"-LOADING Redis is loading the dataset in memory\r\n","path":"GET"}'
    [truncate]='{"mode":"truncate","path":"GET"}'
    [malformed]='{"mode":"reply","reply":"!garbage\r\n","path":"GET"}'
    [oversize]='{"mode":"oversize","bytes":4194304,"path":"GET"}'
    [content_type]='{"mode":"reply","reply":"*1\r\n:1\r\n","path":"GET"}'
    [trickle]='{"mode":"trickle","ms":1000,"path":"GET"}'
)

# Stand-in paths the call uses (the fault applies to those only, so the
# session's other requests are untouched).
declare -A fault_path=([ollama]=/api/generate [qdrant]=/collections [s3]=/fault-matrix)

failed=0
rows=()

# run_cell SERVICE FAULT: one backend sees the fault, then its lifting
run_cell() {
    local svc=$1 fault=$2 server=fault_$1 spec lift out sqlstate message attempts breaker pids_seen ok
    if [[ $fault == down ]]; then
        server=fault_${svc}_down
        local target
        case $svc in
            ollama) target=$DC_OLLAMA_PORT ;; qdrant) target=$DC_QDRANT_PORT ;;
            s3) target=$DC_S3_PORT ;; redis) target=$resp_port ;;
        esac
        lift="\\! test/fault/lift.sh forward ${down_port[$svc]} $target $STATE/forward_$svc.pid"
    else
        if [[ $svc == redis ]]; then
            spec=${resp_switch[$fault]}
        else
            spec=$(jq -c --arg p "${fault_path[$svc]}" '. + {path: $p}' <<<"${http_switch[$fault]}")
        fi
        curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' --data-raw "$spec" \
            "http://127.0.0.1:$(port_of "$svc")/_test/fault" >/dev/null
        lift="\\! test/fault/lift.sh fault $(port_of "$svc")"
    fi
    curl -sS --max-time 10 -X DELETE "http://127.0.0.1:$(port_of "$svc")/_test/log" >/dev/null 2>&1 || true

    local sql=${call[$svc]//SERVER/$server}
    out=$(psql -X -At 2>&1 <<SQL || true
\\set VERBOSITY verbose
SELECT 'pid=' || pg_backend_pid();
SET client_min_messages = debug1;
$sql;
RESET client_min_messages;
SELECT 'breaker=' || coalesce((SELECT failures FROM datacore.breaker_status() WHERE server = '$server'), 0);
$lift
$sql;
SELECT 'after=' || coalesce((SELECT failures FROM datacore.breaker_status() WHERE server = '$server'), 0);
SELECT 'pid=' || pg_backend_pid();
SQL
)
    sqlstate=$(sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' <<<"$out" | head -n 1)
    message=$(sed -n 's/^ERROR:  [0-9A-Z]\{5\}: //p' <<<"$out" | head -n 1)
    breaker=$(sed -n 's/^breaker=//p' <<<"$out")
    ok=$(grep -c '^ok=' <<<"$out" || true)
    pids_seen=$(sed -n 's/^pid=//p' <<<"$out" | sort -u | wc -l)
    local npids
    npids=$(grep -c '^pid=' <<<"$out" || true)
    if [[ $svc == redis ]]; then
        if [[ $fault == down || $fault == reset ]]; then
            attempts=-
        else
            attempts=$(curl -sS "http://127.0.0.1:$resp_control/_test/log" | grep -c '"path":"GET"' || true)
            attempts=$((attempts - 1))    # the successful call after the lift
        fi
    else
        attempts=$(( $(grep -c 'DEBUG:  .*datacore: retrying' <<<"$out" || true) + 1 ))
    fi
    # the message without the things that differ from run to run
    message=$(sed -E 's/[0-9]+ ms/N ms/g; s/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g' <<<"$message")

    local problems=()
    [[ -n $sqlstate ]] || problems+=("no error under the fault")
    [[ $sqlstate != XX000 ]] || problems+=("internal error XX000")
    (( npids == 2 && pids_seen == 1 )) || problems+=("backend did not survive (pids: $(sed -n 's/^pid=//p' <<<"$out" | tr '\n' ' '))")
    (( ok == 1 )) || problems+=("the call after lifting the fault did not succeed")
    [[ $(sed -n 's/^after=//p' <<<"$out") == 0 ]] || problems+=("breaker not reset by the success")
    if (( ${#problems[@]} )); then
        failed=1
        printf 'FAIL: %s / %s: %s\n' "$svc" "$fault" "$(IFS=';'; echo "${problems[*]}")" >&2
        sed 's/^/    /' <<<"$out" >&2
    else
        printf 'ok: %s / %s: %s %s\n' "$svc" "$fault" "$sqlstate" "$message"
    fi
    local retried=no
    [[ $attempts =~ ^[0-9]+$ ]] && (( attempts > 1 )) && retried="yes ($attempts attempts)"
    local counted=no
    [[ ${breaker:-0} =~ ^[1-9] ]] && counted="yes"
    message=${message//|/\\|}
    rows+=("| ${label[$fault]} | $sqlstate | ${message} | $retried | $counted |")
    if [[ $fault == down ]]; then
        kill "$(cat "$STATE/forward_$svc.pid")" 2>/dev/null || true
        rm -f "$STATE/forward_$svc.pid"
    fi
}

table=$STATE/table.md
{
    for svc in ollama qdrant s3 redis; do
        rows=()
        for f in "${FAULTS[@]}"; do run_cell "$svc" "$f" >&2; done
        case $svc in
            ollama) echo "### Ollama (\`${call[ollama]//SERVER/fault_ollama}\`)" ;;
            qdrant) echo "### Qdrant (\`${call[qdrant]//SERVER/fault_qdrant}\`)" ;;
            s3) echo "### S3 (\`${call[s3]//SERVER/fault_s3}\`)" ;;
            redis) echo "### Redis (\`${call[redis]//SERVER/fault_redis}\`)" ;;
        esac
        echo
        echo "| fault | SQLSTATE | message | retried? | breaker counted? |"
        echo "|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
        echo
    done
} >"$table"

echo "fault matrix: $((${#FAULTS[@]} * 4)) cells in ${SECONDS} s" >&2

# The generated part of the doc sits between these markers.
BEGIN='<!-- fault matrix: generated by test/fault/matrix.sh --write -->'
END='<!-- end of fault matrix -->'
if (( WRITE )); then
    awk -v b="$BEGIN" -v e="$END" -v t="$table" '
        $0 == b { print; while ((getline l < t) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip' "$DOC" >"$STATE/doc" && cp "$STATE/doc" "$DOC"
    echo "wrote the table into $DOC"
else
    awk -v b="$BEGIN" -v e="$END" '$0 == e { p = 0 } p; $0 == b { p = 1 }' "$DOC" >"$STATE/committed"
    if ! diff -u "$STATE/committed" "$table" >&2; then
        echo "FAIL: the fault matrix differs from $DOC (test/fault/matrix.sh --write updates it)" >&2
        failed=1
    fi
fi
exit $failed
