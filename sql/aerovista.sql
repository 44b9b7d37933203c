-- The AeroVista chain end to end: rows -> Ollama -> S3 -> Redis, the cache,
-- the stale answer when the AI node is down, and the PostgREST role.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
\set ECHO none
\set QUIET on
SET client_min_messages = warning;
\i docs/examples/aerovista.sql
RESET client_min_messages;
\set QUIET off
\set ECHO all

DO $$
BEGIN
	PERFORM datacore.s3_create_bucket('summaries');
EXCEPTION WHEN duplicate_object THEN
	NULL;
END $$;
SELECT datacore.redis_del(ARRAY['aerovista:summary:6', 'aerovista:summary:6:last']);

INSERT INTO aerovista.activity_logs (occurred_at, actor, action)
VALUES (now() - interval '1 hour', 'alice', 'login'),
	   (now() - interval '2 hours', 'bob', 'deploy'),
	   (now() - interval '3 hours', 'alice', 'login_failed'),
	   (now() - interval '30 hours', 'carol', 'export_report');

-- GET-able (STABLE) listing, POST-only summary, both running as their owner
SELECT proname, provolatile, prosecdef, proconfig
FROM pg_proc WHERE pronamespace = 'aerovista'::regnamespace ORDER BY proname;
SELECT count(*) AS last_6h FROM aerovista.get_recent_activity(6);

-- first call: the model is asked, the result stored and cached
SELECT dc_test.clear_log('ollama'), dc_test.clear_log('s3');
SET ROLE web_anon;
SELECT aerovista.get_recent_activity_summary(6) AS r \gset
RESET ROLE;
SELECT (:'r'::jsonb) ->> 'cached' AS cached, (:'r'::jsonb) ->> 'stale' AS stale,
	   (:'r'::jsonb) ->> 'activity_count' AS activity_count,
	   (:'r'::jsonb) ->> 'summary' LIKE '[system] echo: Summarise this activity log of the last 6 hours%' AS summarised,
	   (:'r'::jsonb) ->> 'object' ~ '^s3://summaries/activity/\d{4}/\d\d/\d\d/last-6h-\d{6}\.json$' AS object;
SELECT l -> 'body' ->> 'model' AS model, l -> 'body' -> 'stream' AS stream,
	   l -> 'body' ->> 'system' AS system, l -> 'body' -> 'options' AS options,
	   l -> 'body' ->> 'prompt' LIKE '%"action": "login_failed"%' AS rows_in_prompt,
	   l -> 'body' ->> 'prompt' LIKE '%export_report%' AS old_rows_in_prompt
FROM dc_test.log('ollama') l;
SELECT l ->> 'method' AS method, l ->> 'status' AS status FROM dc_test.log('s3') l;

-- the stored document is the answer, minus the delivery flags
SELECT datacore.s3_get_text('summaries',
		substr((:'r'::jsonb) ->> 'object', length('s3://summaries/') + 1))::jsonb
	   = (:'r'::jsonb) - 'object' - 'cached' - 'stale' AS stored_matches;
SELECT datacore.redis_ttl('aerovista:summary:6') BETWEEN interval '9 minutes' AND interval '10 minutes' AS cached_with_ttl,
	   datacore.redis_ttl('aerovista:summary:6:last') IS NULL AS last_kept;

-- second call: from Redis, the model is not asked again
SELECT dc_test.clear_log('ollama');
SET ROLE web_anon;
SELECT r ->> 'cached' AS cached, r ->> 'stale' AS stale, r ->> 'summary' = (:'r'::jsonb) ->> 'summary' AS same
FROM aerovista.get_recent_activity_summary(6) r;
RESET ROLE;
SELECT count(*) AS model_requests FROM dc_test.log('ollama');

-- the AI node fails and the cache has expired: the last good answer, flagged stale
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503}');
SELECT datacore.redis_del('aerovista:summary:6');
SET ROLE web_anon;
SELECT r ->> 'cached' AS cached, r ->> 'stale' AS stale, r ->> 'stale_reason' AS stale_reason,
	   r ->> 'summary' = (:'r'::jsonb) ->> 'summary' AS same
FROM aerovista.get_recent_activity_summary(6) r;

-- ... and with nothing to fall back on, the error itself
RESET ROLE;
SELECT datacore.redis_del('aerovista:summary:6:last');
SET ROLE web_anon;
SELECT aerovista.get_recent_activity_summary(6);
\echo :LAST_ERROR_SQLSTATE
SELECT aerovista.get_recent_activity_summary(0);
\echo :LAST_ERROR_SQLSTATE

-- web_anon reaches the services only through the RPCs: the server fence, not the schema, stops it
SELECT datacore.redis_get('aerovista:summary:6');
SELECT * FROM aerovista.activity_logs;
RESET ROLE;
SELECT dc_test.fault('ollama', NULL);

-- clean up: objects, keys, schema, role
SELECT count(datacore.s3_delete('summaries', key)) > 0 AS deleted FROM datacore.s3_list('summaries');
SELECT datacore.s3_delete_bucket('summaries');
SELECT datacore.redis_del(ARRAY['aerovista:summary:6', 'aerovista:summary:6:last']);
\set ECHO none
\set QUIET on
SET client_min_messages = warning;
DROP SCHEMA aerovista CASCADE;
DROP OWNED BY web_anon;
DROP ROLE web_anon;
RESET client_min_messages;
\set QUIET off
\set ECHO all
\i test/regress/teardown.psql
