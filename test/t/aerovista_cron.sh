#!/bin/bash
# AeroVista's Pattern 2 through the stack's real pg_cron: the documented
# cron.schedule_in_database line (with an every-minute schedule) runs
# public.summarize_recent_logs() in a database of its own; within 75 s the
# run shows as succeeded in cron.job_run_details and its document is in the
# bucket "summaries" as summary-<UTC timestamp>.json, holding the model's
# summary of the 100 newest rows (the prompt the stand-in echoes).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
db=regress_aerovista_cron
job=regress-aerovista-summary

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# pg_cron lives in cron.database_name (postgres); keep what was there
had_cron=$(q -d postgres -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'")
had_roles=$(q -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname IN ('web_anon', 'aerovista_owner')")

drop_bucket() {
    q -d "$db" >/dev/null 2>&1 <<'SQL' || true
SELECT count(datacore.s3_delete('summaries', key)) FROM datacore.s3_list('summaries');
SELECT datacore.s3_delete_bucket('summaries');
SQL
}

cleanup() {
    q -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '$job'" >/dev/null 2>&1 || true
    q -d postgres -c "DELETE FROM cron.job_run_details WHERE command LIKE '%summarize_recent_logs%' AND database = '$db'" \
        >/dev/null 2>&1 || true
    drop_bucket
    q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if [[ $had_roles == 0 ]]; then
        q -d postgres -c "DROP ROLE IF EXISTS web_anon" -c "DROP ROLE IF EXISTS aerovista_owner" >/dev/null 2>&1 || true
    fi
    [[ $had_cron == 1 ]] || q -d postgres -c "DROP EXTENSION IF EXISTS pg_cron" >/dev/null 2>&1 || true
}
trap cleanup EXIT
q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null

redis_user=()
[[ -n ${DC_REDIS_USER:-} ]] && redis_user=(-v redis_user="$DC_REDIS_USER")
q -d "$db" -v ollama_url="http://127.0.0.1:$DC_OLLAMA_PORT" -v qdrant_url="http://127.0.0.1:$DC_QDRANT_PORT" \
    -v s3_url="http://127.0.0.1:$DC_S3_PORT" -v s3_access_key="$DC_S3_ACCESS_KEY" -v s3_secret_key="$DC_S3_SECRET_KEY" \
    -v redis_port="$DC_REDIS_PORT" "${redis_user[@]}" -v redis_password="$DC_REDIS_PASSWORD" \
    -f docs/examples/aerovista-servers.sql -f docs/examples/aerovista.sql >/dev/null
drop_bucket
# 150 rows, one a minute: the job summarises the 100 newest
q -d "$db" >/dev/null <<'SQL'
SELECT datacore.s3_create_bucket('summaries');
INSERT INTO activity_logs (created_at, event_type, user_id, details)
SELECT now() - make_interval(mins => g), (ARRAY['login', 'file_upload', 'logout'])[1 + g % 3],
       'u' || g % 7, jsonb_build_object('seq', g)
FROM generate_series(1, 150) g;
SQL

# the line docs/examples/aerovista.sql documents, every minute instead of hourly
q -d postgres -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null
jobid=$(q -d postgres -c "SELECT cron.schedule_in_database('$job', '* * * * *',
    \$\$SELECT public.summarize_recent_logs()\$\$, '$db')")
[[ $jobid =~ ^[0-9]+$ ]] || fail "cron.schedule_in_database returned '$jobid'"

status=
for _ in $(seq 1 75); do
    status=$(q -d postgres -c "SELECT status FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid DESC LIMIT 1")
    [[ $status == succeeded || $status == failed ]] && break
    sleep 1
done
[[ $status == succeeded ]] || fail "pg_cron's run ended as '${status:-nothing within 75 s}': $(q -d postgres -c \
    "SELECT return_message FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid DESC LIMIT 1")"
q -d postgres -c "SELECT cron.unschedule($jobid)" >/dev/null

keys=$(q -d "$db" -c "SELECT string_agg(key, ' ') FROM datacore.s3_list('summaries')")
[[ $keys =~ ^summary-[0-9]{8}T[0-9]{6}Z\.json$ ]] || fail "the bucket holds '$keys', not one summary-<timestamp>.json"
check=$(q -d "$db" <<SQL
SELECT concat_ws(' ', d ->> 'rows',
       d ->> 'summary' LIKE E'echo: Summarize these activity logs:\n[%',
       d ->> 'summary' LIKE '%"seq": 1}%', d ->> 'summary' LIKE '%"seq": 100}%',
       d ->> 'summary' LIKE '%"seq": 101}%', d ->> 'model', d ->> 'generated_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
FROM (SELECT datacore.s3_get_text('summaries', '$keys')::jsonb AS d) s
SQL
)
[[ $check == "100 t t t f llama3.2 t" ]] ||
    fail "the stored document is not the summary of the 100 newest rows (rows, prompt, newest, 100th, 101st, model, time: $check)"
echo "ok: pg_cron ran public.summarize_recent_logs() in $db; summaries/$keys holds the summary of the 100 newest rows"
