-- The AeroVista demo while the AI node is down (run by docs/examples/demo-chain).
\pset pager off
\set SHOW_CONTEXT never
\set ON_ERROR_STOP on
\set gateway '{"role":"web_anon","sub":"demo-user","service":"aerovista-gateway"}'

\echo '-- the cached answer expires (deleted here), the AI node does not answer:'
\echo '-- the last good summary, flagged stale, and one refresh job for when the node is back'
SELECT datacore.redis_del('datacore:summary:aerovista_owner:aerovista:activity-summary:24h') AS expired;
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
SELECT set_config('role', 'web_anon', true), set_config('request.jwt.claims', :'gateway', true) \g /dev/null
SELECT app.authenticate_service() \g /dev/null
\timing on
SELECT get_recent_activity_summary(hours := 24) AS body \gset
\timing off
COMMIT;
SELECT jsonb_pretty(:'body'::jsonb - 'summary') AS body;

\echo '-- asked again: still stale, the same refresh job (one per cache key)'
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
SELECT set_config('role', 'web_anon', true), set_config('request.jwt.claims', :'gateway', true) \g /dev/null
SELECT app.authenticate_service() \g /dev/null
SELECT r -> 'stale' AS stale, r -> 'refresh_job' AS refresh_job FROM get_recent_activity_summary(hours := 24) r;
COMMIT;

\echo '-- hours never summarised before: nothing to fall back on, PT503 (PostgREST answers 503)'
\set ON_ERROR_STOP off
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
SELECT set_config('role', 'web_anon', true), set_config('request.jwt.claims', :'gateway', true) \g /dev/null
SELECT app.authenticate_service() \g /dev/null
SELECT get_recent_activity_summary(hours := 6);
ROLLBACK;
