-- The AeroVista schema (docs/examples/aerovista.sql) as PostgREST 12 calls
-- it: each request replayed statement by statement (test/regress/postgrest_rpc.psql),
-- the volatility and access mode of each RPC, the pre-request function, the
-- rate limit, and what web_anon can reach.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
\set ECHO none
\set QUIET on
SET client_min_messages = warning;
\i docs/examples/aerovista.sql
SELECT dc_test.s3_drop_bucket('summaries');
SELECT datacore.s3_create_bucket('summaries');
-- the refresh jobs queued here take ids; later tests see the ids as before
SELECT last_value AS jobs_seq_last, is_called AS jobs_seq_called FROM datacore.jobs_id_seq \gset
SELECT datacore.redis_del(ARRAY['datacore:ratelimit:aerovista:summary:sub:regress-u1',
								'datacore:ratelimit:aerovista:summary:sub:regress-u2',
								'datacore:summary:aerovista_owner:aerovista:activity-summary:24h',
								'datacore:summary:aerovista_owner:aerovista:activity-summary:7h']);
DELETE FROM datacore.summaries WHERE owner = 'aerovista_owner'::regrole;
DELETE FROM datacore.jobs WHERE owner = 'aerovista_owner'::regrole;
RESET client_min_messages;
\set QUIET off
\set ECHO all

-- 15 logins, 3 file uploads, 2 logouts in the last day; 4 exports 30 hours
-- ago (in the last 48 hours, not the last 24); one login 3 days ago
INSERT INTO activity_logs (created_at, event_type, user_id, details)
SELECT now() - make_interval(mins => 7 * g), 'login', 'u' || g % 4, jsonb_build_object('ip', '10.0.0.' || g)
FROM generate_series(1, 15) g
UNION ALL SELECT now() - make_interval(hours => g), 'file_upload', 'u1', '{"bytes": 1024}' FROM generate_series(1, 3) g
UNION ALL SELECT now() - make_interval(hours => 2 * g), 'logout', 'u2', '{}' FROM generate_series(1, 2) g
UNION ALL SELECT now() - interval '30 hours', 'export', 'u3', '{}' FROM generate_series(1, 4) g
UNION ALL SELECT now() - interval '3 days', 'login', 'u0', '{}';

-- the functions as PostgREST sees them: STABLE (GET) or VOLATILE (POST only),
-- running as aerovista_owner
SELECT p.oid::regprocedure AS function, provolatile, prosecdef, proowner::regrole AS owner, proconfig
FROM pg_proc p
WHERE p.pronamespace IN ('public'::regnamespace, 'app'::regnamespace)
ORDER BY p.oid::regprocedure::text;

-- web_anon: USAGE on public (and on app, for the pre-request), the two RPCs,
-- the view; no table, no server, no USAGE on schema datacore
SELECT o AS object, priv, has AS web_anon_has
FROM (VALUES
	('schema public', 'USAGE', has_schema_privilege('web_anon', 'public', 'USAGE')),
	('schema app', 'USAGE', has_schema_privilege('web_anon', 'app', 'USAGE')),
	('schema datacore', 'USAGE', has_schema_privilege('web_anon', 'datacore', 'USAGE')),
	('get_recent_activity', 'EXECUTE', has_function_privilege('web_anon', 'get_recent_activity(int)', 'EXECUTE')),
	('get_recent_activity_summary', 'EXECUTE', has_function_privilege('web_anon', 'get_recent_activity_summary(int)', 'EXECUTE')),
	('app.authenticate_service', 'EXECUTE', has_function_privilege('web_anon', 'app.authenticate_service()', 'EXECUTE')),
	('summarize_recent_logs', 'EXECUTE', has_function_privilege('web_anon', 'summarize_recent_logs(text)', 'EXECUTE')),
	('app.caller', 'EXECUTE', has_function_privilege('web_anon', 'app.caller()', 'EXECUTE')),
	('activity_summary', 'SELECT', has_table_privilege('web_anon', 'activity_summary', 'SELECT')),
	('activity_logs', 'SELECT', has_table_privilege('web_anon', 'activity_logs', 'SELECT')),
	('app.service_auth', 'SELECT', has_table_privilege('web_anon', 'app.service_auth', 'SELECT'))) v(o, priv, has);
SELECT s.srvname, has_server_privilege('web_anon', s.oid, 'USAGE') AS web_anon_usage,
	   has_server_privilege('aerovista_owner', s.oid, 'USAGE') AS owner_usage
FROM pg_foreign_server s ORDER BY 1;
-- datacore's functions: none grants web_anon anything of its own; PUBLIC's
-- EXECUTE (the extension's) is fenced by schema and server USAGE
SELECT count(*) FILTER (WHERE a.grantee = 'web_anon'::regrole) AS granted_to_web_anon,
	   count(*) FILTER (WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') > 0 AS public_may_execute
FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.pronamespace = 'datacore'::regnamespace;

-- GET /rpc/get_recent_activity?hours=48, anonymous with the service token.
-- PostgREST 12 prepares the call as below; GET query parameters arrive as
-- a JSON object of strings that json_to_record casts to the parameter types.
PREPARE pgrst_get_recent_activity(json) AS
WITH pgrst_source AS (SELECT pgrst_call.* FROM (SELECT $1 AS json_data) pgrst_payload, LATERAL (SELECT "hours" FROM json_to_record(pgrst_payload.json_data) AS _("hours" integer) LIMIT 1) pgrst_body , LATERAL "public"."get_recent_activity"("hours" := pgrst_body."hours") pgrst_call) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT "get_recent_activity".* FROM "pgrst_source" AS "get_recent_activity"    ) _postgrest_t;
-- POST /rpc/get_recent_activity_summary {"hours": 24}: a scalar (jsonb) result
PREPARE pgrst_get_recent_activity_summary(json) AS
WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM (SELECT $1 AS json_data) pgrst_payload, LATERAL (SELECT "hours" FROM json_to_record(pgrst_payload.json_data) AS _("hours" integer) LIMIT 1) pgrst_body , LATERAL (SELECT "public"."get_recent_activity_summary"("hours" := pgrst_body."hours") pgrst_scalar) pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT "get_recent_activity_summary".* FROM "pgrst_source" AS "get_recent_activity_summary"    ) _postgrest_t;

-- the gateway's service token; app.service_auth keeps only its SHA-256
UPDATE app.service_auth SET token_sha256 = sha256('regress-service-token');

\set pgrst_mode 'READ ONLY'
\set pgrst_method GET
\set pgrst_path /rpc/get_recent_activity
\set pgrst_role web_anon
\set pgrst_claims '{"role":"web_anon"}'
\set pgrst_headers '{"accept":"*/*","user-agent":"curl/7.88.1","x-service-auth":"regress-service-token"}'
\set pgrst_stmt pgrst_get_recent_activity
\set pgrst_args '{"hours":"48"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate :pgrst_page_total
SELECT :'pgrst_body'::jsonb AS body;
SELECT :'pgrst_body'::jsonb = '[{"event_type":"login","count":15},{"event_type":"export","count":4},
	{"event_type":"file_upload","count":3},{"event_type":"logout","count":2}]' AS documented_shape;
-- the default, 24 hours: PostgREST sends {} and the DEFAULT applies
PREPARE pgrst_get_recent_activity_noargs(json) AS
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."get_recent_activity"() pgrst_call) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT "get_recent_activity".* FROM "pgrst_source" AS "get_recent_activity"    ) _postgrest_t;
\set pgrst_stmt pgrst_get_recent_activity_noargs
\set pgrst_args '{}'
\i test/regress/postgrest_rpc.psql
SELECT :'pgrst_sqlstate' AS sqlstate, :'pgrst_body'::jsonb AS body;
-- the view, as web_anon
SET ROLE web_anon;
SELECT event_type, sum(event_count) AS events FROM activity_summary GROUP BY 1 ORDER BY 2 DESC, 1;
RESET ROLE;

-- db-pre-request: app.authenticate_service()
\set pgrst_stmt pgrst_get_recent_activity
\set pgrst_args '{"hours":"48"}'
-- no credentials: PT401
\set pgrst_headers '{"accept":"*/*","user-agent":"curl/7.88.1"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate
-- a wrong token: PT401
\set pgrst_headers '{"accept":"*/*","x-service-auth":"guessed"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate
-- a JWT PostgREST accepted, but not the service's: PT403
\set pgrst_claims '{"role":"web_anon","sub":"regress-u1","exp":1999999999}'
\set pgrst_headers '{"accept":"*/*","authorization":"Bearer eyJ..."}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate
-- the gateway's JWT carries the service claim: in
\set pgrst_claims '{"role":"web_anon","sub":"regress-u1","service":"aerovista-gateway"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate :pgrst_page_total
-- a wrong token is refused even next to the service claim
\set pgrst_headers '{"authorization":"Bearer eyJ...","x-service-auth":"guessed"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate
-- with no token configured, no header matches
UPDATE app.service_auth SET token_sha256 = NULL;
\set pgrst_claims '{"role":"web_anon"}'
\set pgrst_headers '{"x-service-auth":""}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate
UPDATE app.service_auth SET token_sha256 = sha256('regress-service-token');
-- the body PostgREST answers with (code, message, details, hint)
SET ROLE web_anon;
BEGIN READ ONLY;
SELECT set_config('request.jwt.claims', '{"role":"web_anon","sub":"regress-u1"}', true);
\set VERBOSITY verbose
SELECT app.authenticate_service();
ROLLBACK;
SELECT app.authenticate_service();
\set VERBOSITY default
RESET ROLE;

-- GET /rpc/get_recent_activity_summary?hours=24: a VOLATILE function in a
-- READ ONLY transaction.  PostgreSQL alone would let it run (its writes are
-- on S3 and Redis); datacore refuses with 25006 (HTTP 405) before anything
-- is sent, and before the rate limit counts the call.
\set pgrst_claims '{"role":"web_anon","sub":"regress-u2","service":"aerovista-gateway"}'
\set pgrst_headers '{"accept":"*/*","authorization":"Bearer eyJ..."}'
\set pgrst_path /rpc/get_recent_activity_summary
\set pgrst_stmt pgrst_get_recent_activity_summary
\set pgrst_args '{"hours":"24"}'
SELECT dc_test.clear_log('ollama'), dc_test.clear_log('s3');
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate
SELECT count(*) AS model_requests FROM dc_test.log('ollama');

-- POST /rpc/get_recent_activity_summary {"hours": 24}: READ WRITE, the body
-- as PostgREST passes it.  Cold: the counts go to the model, the document
-- to S3, the answer to Redis.
\set pgrst_mode 'READ WRITE'
\set pgrst_method POST
\set pgrst_headers '{"accept":"*/*","authorization":"Bearer eyJ...","content-type":"application/json"}'
\set pgrst_args '{"hours": 24}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate :pgrst_page_total
\set cold :pgrst_body
SELECT b ->> 'summary' LIKE '%Summarize these events:%' AS summarised, b -> 'rows' AS rows,
	   b -> 'rows_omitted' AS rows_omitted, b -> 'cached' AS cached, b -> 'stale' AS stale,
	   b ->> 'object' ~ '^s3://summaries/activity-24h-\d{8}T\d{6}Z\.json$' AS object_named,
	   b ->> 'generated_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$' AS generated_at
FROM (SELECT :'cold'::jsonb AS b) s;
SELECT l -> 'body' ->> 'model' AS model, l -> 'body' -> 'stream' AS stream,
	   l -> 'body' ->> 'prompt' LIKE 'Summarize these events:%' AS instruction_first,
	   l -> 'body' ->> 'prompt' LIKE '%"count": 15, "event_type": "login"%' AS counts_in_prompt,
	   l -> 'body' ->> 'prompt' LIKE '%export%' AS older_rows_in_prompt
FROM dc_test.log('ollama') l WHERE l ->> 'path' = '/api/generate';
SELECT (datacore.s3_get_text('summaries', substr((:'cold'::jsonb) ->> 'object', length('s3://summaries/') + 1))::jsonb
		->> 'summary') = (:'cold'::jsonb) ->> 'summary' AS stored;

-- GET again, now that an answer is cached: 25006 still
\set pgrst_mode 'READ ONLY'
\set pgrst_method GET
\set pgrst_args '{"hours":"24"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate

-- POST calls 2 to 10 of this minute are answered from the cache; the 11th
-- is refused: PGRST, which PostgREST answers as HTTP 429 with Retry-After
SELECT dc_test.clear_log('ollama');
\set pgrst_mode 'READ WRITE'
\set pgrst_method POST
\set pgrst_args '{"hours": 24}'
\set ECHO none
\set QUIET on
\set calls ''
\set repeat 9
\i test/regress/postgrest_repeat.psql
\set QUIET off
\set ECHO all
\echo calls 2-10 as sqlstate/cached :calls
SELECT count(*) AS model_requests FROM dc_test.log('ollama');
\set VERBOSITY sqlstate
\i test/regress/postgrest_rpc.psql
\set VERBOSITY default
\echo :pgrst_sqlstate
-- the error PostgREST turns into the response: body from the message,
-- status and headers from the detail (Retry-After: when the oldest of the
-- ten calls leaves the one-minute window)
SET ROLE web_anon;
DO $$
DECLARE
	msg text;
	detail text;
BEGIN
	PERFORM set_config('request.jwt.claims', '{"role":"web_anon","sub":"regress-u2"}', true);
	PERFORM get_recent_activity_summary(hours := 24);
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'body code %, message "%"; status %, Retry-After between 1 and 60: %',
		msg::jsonb ->> 'code', msg::jsonb ->> 'message', detail::jsonb -> 'status',
		(detail::jsonb -> 'headers' ->> 'Retry-After')::int BETWEEN 1 AND 60;
END $$;
RESET ROLE;
-- the limit is per caller: another sub is still let through
\set pgrst_claims '{"role":"web_anon","sub":"regress-u1","service":"aerovista-gateway"}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate

-- the AI node fails and nothing was ever stored for these hours: PT503
-- (HTTP 503)
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500}');
\set pgrst_args '{"hours": 7}'
\set VERBOSITY terse
\i test/regress/postgrest_rpc.psql
\set VERBOSITY default
\echo :pgrst_sqlstate
-- ... and one refresh is queued for when the node is back
SELECT state, owner, args ->> 'cache_key' AS cache_key FROM datacore.jobs
WHERE kind = 'summarize';
SELECT dc_test.fault('ollama', NULL);
-- invalid hours: 22023 (HTTP 400)
\set pgrst_args '{"hours": 0}'
\i test/regress/postgrest_rpc.psql
\echo :pgrst_sqlstate

-- web_anon cannot reach datacore or a server itself (42501: PostgREST 401
-- for anon, 403 for a JWT role), nor read the table or the secret
SET ROLE web_anon;
SELECT datacore.ollama_version();
SELECT datacore.redis_get('aerovista:activity-summary:24h');
SELECT datacore.s3_list('summaries');
SELECT * FROM activity_logs;
SELECT * FROM app.service_auth;
SELECT public.summarize_recent_logs();
RESET ROLE;

\set ECHO none
\set QUIET on
SET client_min_messages = warning;
DEALLOCATE ALL;
SELECT setval('datacore.jobs_id_seq', :jobs_seq_last, :'jobs_seq_called') \g /dev/null
-- nor the metrics of servers that no longer exist
SELECT datacore.reset_metrics() \g /dev/null
SELECT dc_test.s3_drop_bucket('summaries');
SELECT datacore.redis_del(ARRAY['datacore:ratelimit:aerovista:summary:sub:regress-u1',
								'datacore:ratelimit:aerovista:summary:sub:regress-u2',
								'datacore:summary:aerovista_owner:aerovista:activity-summary:24h',
								'datacore:summary:aerovista_owner:aerovista:activity-summary:7h']);
DELETE FROM datacore.summaries WHERE owner = 'aerovista_owner'::regrole;
DELETE FROM datacore.jobs WHERE owner = 'aerovista_owner'::regrole;
DROP SCHEMA app CASCADE;
DROP VIEW activity_summary;
DROP TABLE activity_logs;
DROP FUNCTION get_recent_activity(int), get_recent_activity_summary(int), summarize_recent_logs(text);
DROP OWNED BY web_anon, aerovista_owner;
-- another database of the cluster may still use the roles
DO $$
BEGIN
	DROP ROLE web_anon, aerovista_owner;
EXCEPTION WHEN dependent_objects_still_exist THEN
	NULL;
END $$;
RESET client_min_messages;
\set QUIET off
\set ECHO all
\i test/regress/teardown.psql
