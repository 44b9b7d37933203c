#!/bin/bash
# `pg_ctl stop -m immediate` (what a crash leaves: no shutdown, no
# transaction end) while 1,000 jobs are in flight, a multipart S3 upload
# hangs on its second part and a rag_sync hangs on its third batch.  After
# the restart:
#   - every job ends succeeded, and none that had succeeded before the crash
#     was requested again (the Ollama stand-in's log);
#   - the upload left open is aborted by the job worker's start
#     (ListMultipartUploads shows it after the crash and not after the
#     restart);
#   - the pipeline's watermark did not move (its transaction died), and a
#     rag_sync sends every row again without a duplicate point in Qdrant.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
DB=regress_crash_t
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
JOBS=1000
ROWS=200
q() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DC_PGPORT" -d "$DB" "$@"; }
as_pg() { if (( EUID == 0 )); then runuser -u postgres -- "$@"; else "$@"; fi; }
stand_in() { curl -sS -X "$1" -H 'Content-Type: application/json' ${3:+--data-raw "$3"} "http://127.0.0.1:$2/_test/$4"; }
fault() { stand_in POST "$1" "$2" fault >/dev/null; }
nofault() { stand_in DELETE "$1" "" fault >/dev/null; }
clear_log() { stand_in DELETE "$1" "" log >/dev/null; }
s3_uploads() {   # upload ids open in the test's bucket, per ListMultipartUploads
    curl -sS --aws-sigv4 "aws:amz:$DC_S3_REGION:s3" --user "$DC_S3_ACCESS_KEY:$DC_S3_SECRET_KEY" \
        -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" \
        "http://127.0.0.1:$DC_S3_PORT/regress-crash?uploads=" |
        grep -o '<UploadId>[^<]*</UploadId>' | sed 's/<[^>]*>//g' | paste -sd,
}
qdrant_count() {
    curl -sS -X POST -H 'Content-Type: application/json' --data-raw '{"exact": true}' \
        "http://127.0.0.1:$DC_QDRANT_PORT/collections/regress_crash_rag/points/count" | jq -r .result.count
}

pids=()
cleanup() {
    local p
    for p in "$DC_OLLAMA_PORT" "$DC_S3_PORT" "$DC_QDRANT_PORT"; do nofault "$p" || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    test/services start postgres >/dev/null 2>&1 || true
    q -c "SELECT datacore.qdrant_drop_collection('regress_crash_rag', true)" >/dev/null 2>&1 || true
    curl -sS -X DELETE "http://127.0.0.1:$DC_S3_PORT/_test/objects?bucket=regress-crash" >/dev/null 2>&1 || true
    psql -X -q -h 127.0.0.1 -p "$DC_PGPORT" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

failed=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [[ $2 == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected '$2', got '$3'"; failed=1; fi
}
wait_for() {   # wait_for SQL SECONDS: until the query returns t
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ $(q -c "$1") == t ]] && return 0
        sleep 0.1
    done
    echo "timed out after $2 s waiting for: $1" >&2
    return 1
}
wait_log() {   # wait_log PORT JQ-FILTER COUNT: until COUNT logged requests match
    local i
    for ((i = 0; i < 200; i++)); do
        (( $(stand_in GET "$1" "" log | jq -c "select($2)" | wc -l) >= $3 )) && return 0
        sleep 0.1
    done
    echo "timed out waiting for $3 requests matching $2 on port $1" >&2
    return 1
}

psql -X -q -h 127.0.0.1 -p "$DC_PGPORT" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
# the cluster commits asynchronously (fsync off, synchronous_commit off);
# here every commit, the worker's included, is written before it returns,
# so what the crash keeps is exactly what was committed
psql -X -q -h 127.0.0.1 -p "$DC_PGPORT" -d postgres -c "ALTER DATABASE $DB SET synchronous_commit = on"
q -f test/regress/setup.psql >/dev/null
for p in "$DC_OLLAMA_PORT" "$DC_S3_PORT" "$DC_QDRANT_PORT"; do nofault "$p"; clear_log "$p"; done
q >/dev/null <<SQL
ALTER SERVER minio OPTIONS (ADD multipart_threshold '5242880', ADD part_size '5242880');
SELECT datacore.s3_create_bucket('regress-crash');
CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, updated timestamptz NOT NULL);
INSERT INTO docs SELECT i, 'document ' || i, '2026-01-01'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, $ROWS) i;
SELECT datacore.rag_create('regress_crash', 'docs', 'id', 'body', 'updated', 'regress_crash_rag',
                           batch_size => 50);
SQL

# ---------------------------------------------------------------- in flight
# a 6 MiB object: two parts; the second one never gets an answer
fault "$DC_S3_PORT" '{"mode": "hang", "path": "/regress-crash/big", "after": 2, "times": 1}'
q -c "SELECT datacore.s3_put('regress-crash', 'big', convert_to(repeat('x', 6 * 1024 * 1024), 'UTF8'))" \
    >/dev/null 2>&1 &
pids+=($!)
wait_log "$DC_S3_PORT" '.method == "PUT" and .query.partNumber != null' 2
check "the upload is open on the store" 1 "$(s3_uploads | awk -F, '{print NF}')"

# rag_sync: batches 1 and 2 reach Qdrant, the third hangs
fault "$DC_QDRANT_PORT" '{"mode": "hang", "path": "/collections/regress_crash_rag/points", "after": 2, "times": 1}'
q -c "SELECT datacore.rag_sync('regress_crash')" >/dev/null 2>&1 &
pids+=($!)
wait_log "$DC_QDRANT_PORT" '.path | startswith("/collections/regress_crash_rag/points")' 3
check "two batches are in Qdrant before the crash" 100 "$(qdrant_count)"

# 1,000 embed jobs, each request held 20 ms; crash with about a third done
fault "$DC_OLLAMA_PORT" '{"mode": "delay", "ms": 20, "path": "/api/embed"}'
clear_log "$DC_OLLAMA_PORT"
q -c "SELECT count(datacore.ollama_embed_async('job ' || i)) FROM generate_series(1, $JOBS) i" >/dev/null
wait_for "SELECT count(*) >= $JOBS / 3 FROM datacore.jobs WHERE state = 'succeeded'" 30
succeeded_before=$(q -c "SELECT args->>'input' FROM datacore.jobs WHERE state = 'succeeded' ORDER BY id")
as_pg "$BIN/pg_ctl" stop -D "$DC_STATE_DIR/pgdata" -m immediate -w -s
running_at_crash=$(( $(stand_in GET "$DC_OLLAMA_PORT" "" log | jq -c 'select(.path == "/api/embed")' | wc -l) - $(wc -l <<<"$succeeded_before") ))
echo "at the crash: $(wc -l <<<"$succeeded_before") jobs succeeded, $running_at_crash more requests sent"
(( running_at_crash > 0 )) && check "jobs were in flight at the crash" ok ok ||
    check "jobs were in flight at the crash" "> 0" "$running_at_crash"
check "the crash left the upload open" 1 "$(s3_uploads | awk -F, '{print NF}')"

# ---------------------------------------------------------------- restart
for p in "$DC_OLLAMA_PORT" "$DC_S3_PORT" "$DC_QDRANT_PORT"; do nofault "$p"; done
test/services start postgres >/dev/null 2>&1
wait_for "SELECT count(*) = $JOBS FROM datacore.jobs WHERE state = 'succeeded'" 40 || true
check "every job ended succeeded" "$JOBS" "$(q -c "SELECT count(*) FROM datacore.jobs WHERE state = 'succeeded'")"
requests=$(stand_in GET "$DC_OLLAMA_PORT" "" log | jq -r 'select(.path == "/api/embed") | .body.input | if type == "array" then .[0] else . end')
check "every job's input reached the model" "$JOBS" "$(sort -u <<<"$requests" | wc -l)"
check "no job that had succeeded was requested again" "" \
    "$(sort <<<"$requests" | uniq -d | grep -Fxf - <<<"$succeeded_before" | head -3 | paste -sd,)"

for _ in $(seq 100); do [[ -z $(s3_uploads) ]] && break; sleep 0.2; done
check "the worker aborted the upload the crash left open" "" "$(s3_uploads)"
check "no multipart record is left" 0 \
    "$(find "$DC_STATE_DIR/pgdata/pg_datacore" -type f 2>/dev/null | wc -l)"

check "the watermark did not move" "|" "$(q -c "SELECT coalesce(last_updated, '') || '|' || coalesce(last_id, '') FROM datacore.rag_pipelines WHERE name = 'regress_crash'")"
check "a re-sync sends every row" "$ROWS" "$(q -c "SELECT datacore.rag_sync('regress_crash')")"
check "and Qdrant has each row once" "$ROWS" "$(qdrant_count)"
check "nothing is pending" 0 "$(q -c "SELECT pending FROM datacore.rag_status WHERE pipeline = 'regress_crash'")"
exit $failed
