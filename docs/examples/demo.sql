-- The AeroVista chain, step by step (run by docs/examples/run-demo).
\pset pager off
\set ON_ERROR_STOP on
\echo '-- some activity of the last hours'
INSERT INTO aerovista.activity_logs (occurred_at, actor, action, detail)
SELECT now() - make_interval(mins => 17 * g), a.actor, a.action, a.detail
FROM generate_series(1, 12) g
CROSS JOIN LATERAL (SELECT (ARRAY['alice', 'bob', 'ci-bot', 'carol'])[1 + g % 4] AS actor,
						   (ARRAY['login', 'deploy', 'login_failed', 'export_report', 'update_settings'])[1 + g % 5] AS action,
						   jsonb_build_object('ip', format('10.0.0.%s', g), 'ok', g % 5 <> 2) AS detail) a;
SELECT count(*) AS rows_last_24h FROM aerovista.get_recent_activity(24);

DO $$
BEGIN
	PERFORM datacore.s3_create_bucket('summaries');
EXCEPTION WHEN duplicate_object THEN
	NULL;						-- kept from an earlier run
END $$;

\echo '-- PostgREST: POST /rpc/get_recent_activity_summary {"hours": 24}, as web_anon'
SET ROLE web_anon;
\x on
SELECT r ->> 'cached' AS cached, r ->> 'stale' AS stale, r ->> 'activity_count' AS activity_count,
	   left(r ->> 'summary', 100) || ' ...' AS summary, r ->> 'object' AS object
FROM aerovista.get_recent_activity_summary(24) r;
\x off
\echo '-- the same call again is answered from Redis'
SELECT aerovista.get_recent_activity_summary(24) ->> 'cached' AS cached;
\echo '-- web_anon can call the RPCs, but reach no service itself: no USAGE on the server'
\set ON_ERROR_STOP off
SELECT datacore.ollama_version();
SELECT datacore.redis_get('aerovista:summary:24');
\set ON_ERROR_STOP on
RESET ROLE;

\echo '-- the summary document in object storage'
SELECT key, size FROM datacore.s3_list('summaries', 'activity/');

\echo '-- the AI node goes down and the cache expires: the last good answer, flagged stale'
SELECT datacore.redis_del('aerovista:summary:24');
ALTER SERVER ollama OPTIONS (SET url 'http://127.0.0.1:9');
SET ROLE web_anon;
SELECT r ->> 'stale' AS stale, r ->> 'stale_reason' AS why, r ->> 'summary' IS NOT NULL AS has_summary
FROM aerovista.get_recent_activity_summary(24) r;
RESET ROLE;
\getenv ollama_port DC_OLLAMA_PORT
SELECT format('ALTER SERVER ollama OPTIONS (SET url %L)', 'http://127.0.0.1:' || :'ollama_port') \gexec

\echo '-- RAG: the activity embedded in batches into Qdrant, then searched and asked about'
CREATE VIEW aerovista.activity_docs AS
	SELECT id, occurred_at, actor, action,
		   format('%s did %s from %s', actor, action, detail ->> 'ip') AS doc
	FROM aerovista.activity_logs;
SELECT datacore.rag_create('activity', 'aerovista.activity_docs', 'id', 'doc', 'occurred_at',
						   'aerovista_activity', payload_columns => '{actor,action}');
SELECT datacore.rag_sync('activity') AS rows_synced;
SELECT id, round(score::numeric, 3) AS score, payload ->> 'text' AS text
FROM datacore.rag_search('activity', 'login_failed', k => 3);
SELECT left(datacore.rag_answer('activity', 'Who failed to log in?', k => 3) ->> 'answer', 100) || ' ...' AS answer;
