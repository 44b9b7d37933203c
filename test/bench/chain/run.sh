#!/bin/bash
# Chain benchmark: an RPC shaped like AeroVista's get_recent_activity_summary
# over 100,000 rows of activity_logs(id, created_at, event_type, user_id,
# details jsonb) spread over the last 30 days:
#   rate-limit check (datacore.rate_limit_check, a limit that never refuses)
#   -> datacore.summary_cached -> on a miss: counts by event_type of the
#   last 24 h -> datacore.summarize (prompt, model, S3 put, Redis SET,
#   last-good row).
# The model and S3 are the nginx stub (canned /api/generate and PUT replies,
# so the model's own time is excluded); Redis is the stack's real one.  Each
# call is its own transaction, committed inside the timing, as a PostgREST
# request is.  Rounds interleave a cold call (cache key deleted first,
# untimed) with a cached one; medians are reported, then each step of a
# cold call timed alone.
#
#   flock /tmp/datacore-check.lock test/bench/chain/run.sh [rounds]   (default 300)
#
# Installs Debian's nginx-light when missing (root).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
ROUNDS=${1:-300}
DB=dc_chain_bench

bench_install
stub_start
trap 'stub_stop; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psqlq() { psql -X -q -At -d $DB -v ON_ERROR_STOP=1 "$@"; }
psqlq <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url '$STUB_URL', model 'llama3.2');
CREATE SERVER minio FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url '$STUB_URL', region 'us-east-1');
CREATE USER MAPPING FOR PUBLIC SERVER minio OPTIONS (access_key_id 'bench', secret_access_key 'bench');
CREATE SERVER redis FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '127.0.0.1', port '$DC_REDIS_PORT');
CREATE USER MAPPING FOR PUBLIC SERVER redis OPTIONS (user '$DC_REDIS_USER', password '$DC_REDIS_PASSWORD');

CREATE TABLE activity_logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL,
    event_type text NOT NULL,
    user_id    bigint NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}'
);
INSERT INTO activity_logs (created_at, event_type, user_id, details)
    SELECT now() - (i * interval '30 days' / 100000),
           (ARRAY['login', 'logout', 'file_upload', 'file_download', 'password_reset',
                  'profile_update', 'api_call', 'error'])[1 + (i * 7919) % 8],
           i % 1000, jsonb_build_object('ip', '10.0.' || (i % 256) || '.' || (i % 199))
      FROM generate_series(1, 100000) i;
CREATE INDEX ON activity_logs (created_at);
VACUUM ANALYZE activity_logs;

CREATE FUNCTION recent_counts(hours integer) RETURNS jsonb LANGUAGE sql STABLE AS \$\$
    SELECT coalesce(jsonb_agg(c), '[]') FROM (
        SELECT event_type, count(*) AS count FROM activity_logs
         WHERE created_at > now() - interval '1 hour' * hours
         GROUP BY 1 ORDER BY 2 DESC) c
\$\$;
CREATE FUNCTION summary_rpc(hours integer DEFAULT 24) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS \$\$
DECLARE
    key text := 'activity:' || hours;
    doc jsonb;
BEGIN
    PERFORM datacore.rate_limit_check('bench:' || current_user, 1000000);
    doc := datacore.summary_cached(key);
    IF doc IS NOT NULL THEN
        RETURN doc;
    END IF;
    RETURN datacore.summarize(recent_counts(hours), 'Summarize these events:', key,
                              cache_ttl => '300 seconds', bucket => 'summaries');
END \$\$;
CREATE TABLE timings (kind text, ms float8);
SQL
echo "rows in the last 24 h: $(psqlq -c "SELECT count(*) FROM activity_logs WHERE created_at > now() - interval '24 hours'")"

# interleaved rounds: one cold call, one cached call, each with its commit
psqlq <<SQL
SELECT summary_rpc(24) IS NOT NULL AS warmed \gset
DO \$\$
DECLARE
    t timestamptz;
BEGIN
    FOR i IN 1..$ROUNDS LOOP
        PERFORM datacore.redis_del('datacore:summary:' || current_user || ':activity:24');
        COMMIT;
        t := clock_timestamp();
        PERFORM summary_rpc(24);
        COMMIT;
        INSERT INTO timings VALUES ('cold', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM summary_rpc(24);
        COMMIT;
        INSERT INTO timings VALUES ('cached', extract(epoch FROM clock_timestamp() - t) * 1000);
    END LOOP;
END \$\$;
SQL
cold=$(psqlq -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3) FROM timings WHERE kind = 'cold'")
cached=$(psqlq -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3) FROM timings WHERE kind = 'cached'")
psqlq -c "SELECT kind, count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3) AS median_ms,
                 round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 3) AS p90_ms
            FROM timings GROUP BY 1 ORDER BY 1" | tr '|' '\t'

# each step of a cold call alone (median of 100, each with its commit)
echo "steps of a cold call (median ms):"
psqlq <<SQL | tr '|' '\t'
TRUNCATE timings;
SELECT set_config('bench.rows', recent_counts(24)::text, false) IS NOT NULL AS rows_ready \gset
DO \$\$
DECLARE
    t timestamptz;
    rows jsonb := current_setting('bench.rows')::jsonb;
    p text := (SELECT prompt FROM datacore.summary_prompt(rows, 'Summarize these events:', 16000));
    doc jsonb := '{"summary": "Hello.", "rows": 8}';
BEGIN
    FOR i IN 1..100 LOOP
        t := clock_timestamp();
        PERFORM datacore.rate_limit_check('bench:' || current_user, 1000000);
        COMMIT;
        INSERT INTO timings VALUES ('1 rate_limit_check', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM datacore.summary_cached('no-such-key');
        COMMIT;
        INSERT INTO timings VALUES ('2 summary_cached (miss)', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM recent_counts(24);
        COMMIT;
        INSERT INTO timings VALUES ('3 counts by event_type, 24 h', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM datacore.summary_prompt(rows, 'Summarize these events:', 16000);
        COMMIT;
        INSERT INTO timings VALUES ('4 prompt', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM datacore.ollama_generate_json(p);
        COMMIT;
        INSERT INTO timings VALUES ('5 ollama_generate_json (stub)', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM datacore.s3_put('summaries', 'summary-step.json', doc, 'application/json');
        COMMIT;
        INSERT INTO timings VALUES ('6 s3_put (stub)', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        PERFORM datacore.redis_set('bench:step', doc::text, '300 seconds');
        COMMIT;
        INSERT INTO timings VALUES ('7 redis_set', extract(epoch FROM clock_timestamp() - t) * 1000);
        t := clock_timestamp();
        INSERT INTO datacore.summaries (owner, cache_key, result, generated_at)
            VALUES (current_user::regrole, 'step', doc, now())
            ON CONFLICT (owner, cache_key) DO UPDATE SET result = excluded.result;
        COMMIT;
        INSERT INTO timings VALUES ('8 last-good upsert + commit', extract(epoch FROM clock_timestamp() - t) * 1000);
    END LOOP;
END \$\$;
SELECT kind, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3) FROM timings GROUP BY 1 ORDER BY 1;
SELECT 'dominant: ' || kind FROM timings GROUP BY 1 ORDER BY percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) DESC LIMIT 1;
SQL
psqlq -c "SELECT datacore.redis_del(ARRAY['bench:step', 'datacore:summary:' || current_user || ':activity:24',
                                           'datacore:ratelimit:bench:' || current_user])" >/dev/null

echo "cold median: $cold ms, cached median: $cached ms"
bench_result "RPC cold, 100k rows (rate limit + cache miss + 24 h counts + summarize with S3 put and Redis SET; goal ≤ 10 ms)" \
    "$cold ms" "10 ms" "$(awk -v a="$cold" 'BEGIN {printf "%.2f", a / 10}')"
bench_result "RPC cached (rate limit + summary_cached hit; goal ≤ 0.5 ms)" \
    "$cached ms" "0.5 ms" "$(awk -v a="$cached" 'BEGIN {printf "%.2f", a / 0.5}')"
