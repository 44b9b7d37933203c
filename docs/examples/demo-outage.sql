-- The AeroVista demo while the AI node is down (run by docs/examples/demo-chain).
\pset pager off
\set SHOW_CONTEXT never
\set ON_ERROR_STOP on
\set gateway '{"role":"web_anon","sub":"demo-user","service":"aerovista-gateway"}'
\set hours 24

\echo '-- the cached answer expires (deleted here), the AI node does not answer:'
\echo '-- the last good summary, flagged stale, and one refresh job for when the node is back'
SELECT datacore.redis_del('datacore:summary:aerovista_owner:aerovista:activity-summary:24h') AS expired;
\i docs/examples/demo-summary.psql
SELECT jsonb_pretty(:'body'::jsonb - 'summary') AS body;

\echo '-- asked again: still stale, the same refresh job (one per cache key)'
\i docs/examples/demo-summary.psql
SELECT :'body'::jsonb -> 'stale' AS stale, :'body'::jsonb -> 'refresh_job' AS refresh_job;

\echo '-- hours never summarised before: nothing to fall back on, PT503 (PostgREST answers 503)'
\set ON_ERROR_STOP off
\set hours 6
\i docs/examples/demo-summary.psql
