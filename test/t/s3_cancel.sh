#!/bin/bash
# Cancelling S3 work from another session: a multipart upload whose part and
# abort both hang ends within the clean-up bound (3 s), not the server's
# timeout_ms (60 s here); a foreign scan of a stream that stalled mid-object
# ends at once. pg_regress cannot cancel its own session, hence this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres
S3=http://127.0.0.1:$DC_S3_PORT

fault() {
    curl -sS -X "$1" -H 'Content-Type: application/json' ${2:+--data-raw "$2"} "$S3/_test/fault" >/dev/null
}
sql() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

sql >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS regress_s3_cancel CASCADE;
CREATE SERVER regress_s3_cancel FOREIGN DATA WRAPPER datacore_s3
    OPTIONS (url '$S3', region '$DC_S3_REGION', timeout_ms '60000', multipart_threshold '5242880');
CREATE USER MAPPING FOR PUBLIC SERVER regress_s3_cancel
    OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
-- leftovers of an interrupted earlier run
DO \$\$
BEGIN
    PERFORM datacore.s3_delete('regress-s3-cancel', key, 'regress_s3_cancel')
        FROM datacore.s3_list('regress-s3-cancel', '', 'regress_s3_cancel');
    PERFORM datacore.s3_delete_bucket('regress-s3-cancel', 'regress_s3_cancel');
EXCEPTION WHEN undefined_object THEN
    NULL;
END \$\$;
SELECT datacore.s3_create_bucket('regress-s3-cancel', 'regress_s3_cancel');
SQL
sql >/dev/null <<SQL
SELECT datacore.s3_put('regress-s3-cancel', 'rows/a.jsonl',
    string_agg(format('{"id": %s, "pad": "%s"}', g, repeat('x', 1000)), E'\n'), NULL, 'regress_s3_cancel')
FROM generate_series(1, 2000) g;
CREATE FOREIGN TABLE regress_s3_cancel_rows (id int, pad text) SERVER regress_s3_cancel
    OPTIONS (bucket 'regress-s3-cancel', prefix 'rows/', format 'jsonl');
SQL
cleanup() {
    fault DELETE || true
    sql -c "SELECT count(datacore.s3_delete('regress-s3-cancel', key, 'regress_s3_cancel')) FROM datacore.s3_list('regress-s3-cancel', '', 'regress_s3_cancel')" \
        -c "SELECT datacore.s3_delete_bucket('regress-s3-cancel', 'regress_s3_cancel')" \
        -c "DROP SERVER IF EXISTS regress_s3_cancel CASCADE" >/dev/null 2>&1 || true
    rm -rf "$STATE"
}
STATE=$(mktemp -d)
trap cleanup EXIT
failed=0

# run_bg APP SQL: run SQL in the background under application_name APP; its
# pid is in $bg_pid (a child of this shell, so `wait` measures its end)
run_bg() {
    PGAPPNAME=$1 psql -X -c "$2" >"$STATE/$1.out" 2>&1 &
    bg_pid=$!
}

# wait_request PATHPREFIX METHOD: until the front has logged such a request
wait_request() {
    local i
    for i in $(seq 200); do
        curl -sS "$S3/_test/log" | grep -q "\"method\":\"$2\",\"path\":\"$1" && return 0
        sleep 0.05
    done
    echo "no $2 $1 request arrived" >&2
    return 1
}

# cancel APP PID: cancel the session; sets $ms to how long it took to end
cancel() {
    local start end
    start=$(date +%s%N)
    psql -X -Atc "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null
    wait "$2" || true
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
}

# 1. the part hangs (the create passes), and so does the abort
curl -sS -X DELETE "$S3/_test/log" >/dev/null
fault POST '{"mode": "hang", "after": 1}'
run_bg regress_s3_cancel_put "SELECT datacore.s3_put('regress-s3-cancel', 'big', convert_to(repeat('x', 6 * 1024 * 1024), 'UTF8'), NULL, 'regress_s3_cancel')"
wait_request /regress-s3-cancel/big PUT
sleep 0.3
cancel regress_s3_cancel_put "$bg_pid"
if grep -q 'canceling statement due to user request' "$STATE/regress_s3_cancel_put.out" &&
    grep -q 'could not abort multipart upload' "$STATE/regress_s3_cancel_put.out" && (( ms < 4500 )); then
    echo "ok: a cancelled multipart upload with a hung abort ended in ${ms} ms"
else
    echo "FAIL: the cancelled upload took ${ms} ms:"; cat "$STATE/regress_s3_cancel_put.out"; failed=1
fi
if curl -sS "$S3/_test/log" | grep -q '"method":"DELETE","path":"/regress-s3-cancel/big"'; then
    echo "ok: the abort was sent"
else
    echo "FAIL: no abort request"; failed=1
fi

# 2. a scan whose object stops coming mid-stream
fault POST '{"mode": "stall", "bytes": 100000, "path": "/regress-s3-cancel/rows/"}'
curl -sS -X DELETE "$S3/_test/log" >/dev/null
run_bg regress_s3_cancel_scan "SELECT count(*) FROM regress_s3_cancel_rows"
wait_request /regress-s3-cancel/rows/ GET
sleep 0.3
cancel regress_s3_cancel_scan "$bg_pid"
if grep -q 'canceling statement due to user request' "$STATE/regress_s3_cancel_scan.out" && (( ms < 1000 )); then
    echo "ok: a scan of a stalled stream ended in ${ms} ms"
else
    echo "FAIL: the stalled scan took ${ms} ms to cancel:"; cat "$STATE/regress_s3_cancel_scan.out"; failed=1
fi

# the server still works for the next statement
fault DELETE
if [[ $(sql -c "SELECT count(*) FROM regress_s3_cancel_rows") == 2000 ]]; then
    echo "ok: the table reads normally afterwards"
else
    echo "FAIL: the table cannot be read afterwards"; failed=1
fi
exit $failed
