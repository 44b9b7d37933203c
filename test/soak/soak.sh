#!/bin/bash
# Soak: CALLS (default 100,000) mixed calls to all four services in ONE
# backend, every tenth an error (a refused Redis connection, a missing S3
# key, a missing Qdrant collection), then a jsonl foreign scan over 5,000
# objects.  The backend's RSS (VmRSS) is read after a warm-up of 2,000
# calls, at the end of the calls and after the scan; the goal is growth
# under 2 MB.
#
#   test/soak/soak.sh [CALLS]
#
# Runs against the stack in the environment (test/services env).  It keeps
# a backend busy for minutes, so point it at a stack of its own:
#
#   export DC_STATE_DIR=/tmp/soak-stack DC_PGPORT=55532 DC_REDIS_PORT=56479 \
#       DC_OLLAMA_PORT=51534 DC_QDRANT_PORT=56433 DC_S3_PORT=59100 DC_S3RVER_PORT=59101
#   test/services start && test/soak/soak.sh; test/services stop
#
# (with the extension installed; its backends load datacore.so at start).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres
CALLS=${1:-100000}
BLOCK=10                       # calls per block below
WARMUP=$(( CALLS / 5 < 2000 ? CALLS / 5 / BLOCK * BLOCK : 2000 ))
STATE=$(mktemp -d)
[[ -n ${DC_SOAK_KEEP:-} ]] || trap 'rm -rf "$STATE"' EXIT

dead_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

# One script, one psql, one backend.  Each statement is its own
# transaction, as an application's calls are.
{
    echo '\i test/regress/setup.psql'
    echo '\set ECHO none'
    echo '\set QUIET on'
    echo 'SET client_min_messages = warning;'
    echo "DROP SERVER IF EXISTS soak_redis_down CASCADE;"
    echo "CREATE SERVER soak_redis_down FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '127.0.0.1', port '$dead_port');"
    echo "SELECT datacore.qdrant_drop_collection('soak');"
    echo "SELECT datacore.qdrant_create_collection('soak', 16);"
    echo "SELECT dc_test.s3_drop_bucket('soak');"
    echo "SELECT datacore.s3_create_bucket('soak');"
    echo "SELECT datacore.s3_put('soak', 'k', 'hello'::text);"
    echo "SELECT datacore.qdrant_upsert('soak', 1::bigint, datacore.ollama_embed('hello soak'));"
    echo "SET application_name = 'dc_soak_setup';"
    for ((b = 0; b < CALLS / BLOCK; b++)); do
        (( b * BLOCK == WARMUP )) && echo "SET application_name = 'dc_soak_warm'; SELECT pg_sleep(1);"
        k=$((b % 100))
        cat <<SQL
SELECT datacore.redis_set('soak:$k', 'v$b');
SELECT datacore.redis_get('soak:$k');
SELECT datacore.redis_get('soak:$k', 'soak_redis_down');
SELECT datacore.ollama_generate('soak $k');
SELECT datacore.ollama_embed('soak text $k');
SELECT count(*) FROM datacore.qdrant_search('soak', datacore.ollama_embed('hello soak'), 3);
SELECT datacore.qdrant_count('soak_missing_$((k % 3))');
SELECT datacore.s3_put('soak', 'k$((k % 20))', 'body $b'::text);
SELECT length(datacore.s3_get('soak', 'k$((k % 20))'));
SELECT datacore.s3_get('soak', 'missing-$k');
SQL
    done
    echo "SET application_name = 'dc_soak_calls_done'; SELECT pg_sleep(1);"
    # the jsonl scan: 5,000 objects of one record each, scanned twice
    cat <<'SQL'
SELECT count(*) FROM dc_test.curl('s3', '-X POST -H ''Content-Type: application/json'' --data-raw ''{"bucket":"soakscan","prefix":"o","count":5000,"content":"{\"n\": {n}}\n"}'' http://127.0.0.1:{port}/_test/objects');
CREATE FOREIGN TABLE soak_scan (n int) SERVER minio OPTIONS (bucket 'soakscan', format 'jsonl');
SELECT count(*), sum(n) FROM soak_scan;
SET application_name = 'dc_soak_scan_warm'; SELECT pg_sleep(1);
SELECT count(*), sum(n) FROM soak_scan;
SET application_name = 'dc_soak_scan_done'; SELECT pg_sleep(1);
DROP FOREIGN TABLE soak_scan;
SELECT count(*) FROM dc_test.curl('s3', '-X DELETE http://127.0.0.1:{port}/_test/objects?bucket=soakscan');
SET application_name = 'dc_soak_end'; SELECT pg_sleep(1);
SQL
} >"$STATE/soak.sql"

start=$SECONDS
PGAPPNAME=dc_soak psql -X -q -At -f "$STATE/soak.sql" >"$STATE/out" 2>"$STATE/err" &
psql_pid=$!

# Sample the backend's RSS whenever its application_name changes.
declare -A rss
pid=
while kill -0 "$psql_pid" 2>/dev/null; do
    line=$(psql -X -At -c "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'dc_soak%' AND pid <> pg_backend_pid()" 2>/dev/null | head -n1)
    if [[ $line == *'|'* ]]; then
        pid=${line%%|*}
        phase=${line#*|}
        if [[ -z ${rss[$phase]:-} ]]; then
            rss[$phase]=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
            echo "$(date +%T) $phase: VmRSS ${rss[$phase]} kB"
        fi
    fi
    sleep 0.3
done
wait "$psql_pid" || true
elapsed=$((SECONDS - start))

errors=$(grep -c 'ERROR:' "$STATE/err" || true)
expected_errors=$((CALLS / BLOCK * 3))
echo "calls: $CALLS in $elapsed s ($((CALLS / (elapsed > 0 ? elapsed : 1))) calls/s), errors: $errors (expected $expected_errors)"
grep -o 'ERROR: .*' "$STATE/err" | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 8
failed=0
if (( errors != expected_errors )); then
    echo "FAIL: unexpected errors" >&2
    grep -v -E 'could not connect to redis server "soak_redis_down"|collection `soak_missing|NoSuchKey|missing-' "$STATE/err" | head -n 20 >&2
    failed=1
fi
warm=${rss[dc_soak_warm]:-0} done=${rss[dc_soak_calls_done]:-0}
sw=${rss[dc_soak_scan_warm]:-0} sd=${rss[dc_soak_scan_done]:-0}
echo "RSS after warm-up: $warm kB, after $CALLS calls: $done kB, growth $((done - warm)) kB (goal < 2048 kB)"
echo "RSS after a first 5,000-object jsonl scan: $sw kB, after a second: $sd kB, growth $((sd - sw)) kB"
grep -E "^5000\|" "$STATE/out" | head -n 1 | sed "s/^/scan (count|sum): /"
(( warm > 0 && done > 0 )) || { echo "FAIL: RSS not sampled" >&2; failed=1; }
(( done - warm < 2048 )) || { echo "FAIL: RSS grew by $((done - warm)) kB" >&2; failed=1; }
exit $failed
