-- The AeroVista chain, step by step (run by docs/examples/demo-chain; the
-- outage and the recovery follow in demo-outage.sql and demo-after.sql).
-- Each RPC call is made as PostgREST makes it: the request's settings and
-- role local to its transaction, the pre-request function, then the call.
\pset pager off
\set SHOW_CONTEXT never
\set ON_ERROR_STOP on
\set gateway '{"role":"web_anon","sub":"demo-user","service":"aerovista-gateway"}'
\set hours 24

\echo
\echo '-- 10,000 rows of activity over the last 48 hours'
INSERT INTO activity_logs (created_at, event_type, user_id, details)
SELECT now() - random() * interval '48 hours',
	   (ARRAY['login', 'login', 'login', 'login', 'file_upload', 'file_upload', 'logout', 'export',
			  'password_reset'])[1 + (random() * 8)::int],
	   'u' || (1 + (random() * 250)::int),
	   jsonb_build_object('ip', format('10.0.%s.%s', g % 7, g % 250), 'ok', random() > 0.05)
FROM generate_series(1, 10000) g;
VACUUM ANALYZE activity_logs;
SELECT count(*) AS rows, min(created_at)::timestamptz(0) AS oldest, max(created_at)::timestamptz(0) AS newest
FROM activity_logs;

DO $$
BEGIN
	PERFORM datacore.s3_create_bucket('summaries');
EXCEPTION WHEN duplicate_object THEN
	NULL;						-- kept from an earlier run
END $$;

\echo
\echo '-- GET /rpc/get_recent_activity?hours=24   (STABLE: PostgREST runs it READ ONLY)'
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
SELECT set_config('role', 'web_anon', true), set_config('request.jwt.claims', :'gateway', true) \g /dev/null
SELECT app.authenticate_service() \g /dev/null
SELECT json_agg(r) AS body FROM get_recent_activity(hours := 24) r;
COMMIT;

\echo
\echo '-- POST /rpc/get_recent_activity_summary {"hours": 24}: cold, the cache is empty'
\echo '--   counts -> "Summarize these events:" -> Ollama -> S3 summaries/ -> Redis (300 s)'
\i docs/examples/demo-summary.psql
SELECT jsonb_pretty(:'body'::jsonb - 'summary') AS body,
	   left(:'body'::jsonb ->> 'summary', 160) || ' ...' AS summary;

\echo
\echo '-- the same call again: answered from Redis, no rows computed'
\i docs/examples/demo-summary.psql
SELECT :'body'::jsonb -> 'cached' AS cached, :'body'::jsonb -> 'stale' AS stale,
	   :'body'::jsonb ->> 'generated_at' AS generated_at;

\echo
\echo '-- the summary document in object storage'
SELECT key, size FROM datacore.s3_list('summaries') ORDER BY key;
SELECT jsonb_pretty(datacore.s3_get_text('summaries', substr(:'body'::jsonb ->> 'object',
		length('s3://summaries/') + 1))::jsonb - 'summary') AS stored_document;

\echo
\echo '-- GET /rpc/get_recent_activity_summary: refused (25006, PostgREST answers 405), cached or not'
\set ON_ERROR_STOP off
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
SELECT set_config('role', 'web_anon', true), set_config('request.jwt.claims', :'gateway', true) \g /dev/null
SELECT app.authenticate_service() \g /dev/null
SELECT get_recent_activity_summary(hours := 24);
ROLLBACK;

\echo
\echo '-- without the service token or claim the pre-request function refuses (PT401, HTTP 401)'
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;
SELECT set_config('role', 'web_anon', true), set_config('request.jwt.claims', '{"role":"web_anon"}', true) \g /dev/null
SELECT app.authenticate_service();
ROLLBACK;

\echo
\echo '-- web_anon reaches no service itself: no USAGE on schema datacore or on any server (42501)'
SET ROLE web_anon;
SELECT datacore.ollama_version();
SELECT * FROM activity_logs LIMIT 1;
RESET ROLE;
\set ON_ERROR_STOP on

\echo
\echo '-- the rate limit: 10 calls a minute per caller (the JWT sub), the 11th is HTTP 429'
SET ROLE web_anon;
DO $$
DECLARE
	r jsonb;
	msg text;
	detail text;
BEGIN
	PERFORM set_config('request.jwt.claims', '{"role":"web_anon","sub":"demo-burst"}', true);
	FOR i IN 1..11 LOOP
		BEGIN
			r := get_recent_activity_summary(hours := 24);
			RAISE NOTICE 'call %: 200, cached %', i, r -> 'cached';
		EXCEPTION WHEN SQLSTATE 'PGRST' THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
			RAISE NOTICE 'call %: % %', i, detail, msg;
		END;
	END LOOP;
END $$;
RESET ROLE;

\echo
\echo '-- Pattern 2, the hourly pg_cron job: the 100 newest rows -> "Summarize these activity logs:" -> S3'
SELECT r - 'summary' AS result, left(r ->> 'summary', 120) || ' ...' AS summary
FROM public.summarize_recent_logs() r;
