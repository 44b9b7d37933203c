-- The AeroVista demo after the AI node is back (run by docs/examples/demo-chain).
\pset pager off
\set SHOW_CONTEXT never
\set ON_ERROR_STOP on
\set gateway '{"role":"web_anon","sub":"demo-user","service":"aerovista-gateway"}'
\set hours 24

\echo '-- the refresh jobs run in the background worker, as aerovista_owner, once the node answers'
\timing on
SELECT id, args ->> 'cache_key' AS cache_key,
	   datacore.job_wait(id, '120 seconds') - 'summary' AS result
FROM datacore.jobs WHERE kind = 'summarize' ORDER BY id;
\timing off
SELECT id, state, attempts, args ->> 'cache_key' AS cache_key FROM datacore.jobs WHERE kind = 'summarize' ORDER BY id;

\echo '-- and the RPC answers fresh again, from the cache the job filled'
\i docs/examples/demo-summary.psql
SELECT :'body'::jsonb -> 'cached' AS cached, :'body'::jsonb -> 'stale' AS stale,
	   :'body'::jsonb ->> 'generated_at' AS generated_at;

\echo '-- every summary document in the bucket'
SELECT key, size FROM datacore.s3_list('summaries') ORDER BY key;

\echo '-- RAG: the 200 newest events embedded in batches into Qdrant, then searched and asked about'
CREATE VIEW activity_docs AS
	SELECT id, created_at, event_type, user_id,
		   format('%s did %s from %s', user_id, event_type, details ->> 'ip') AS doc
	FROM activity_logs ORDER BY created_at DESC LIMIT 200;
SELECT datacore.rag_create('activity', 'public.activity_docs', 'id', 'doc', 'created_at',
						   'aerovista_activity', payload_columns => '{event_type,user_id}');
SELECT datacore.rag_sync('activity') AS rows_synced;
SELECT id, round(score::numeric, 3) AS score, payload ->> 'text' AS text
FROM datacore.rag_search('activity', 'password_reset', k => 3);
SELECT left(datacore.rag_answer('activity', 'Who reset a password?', k => 3) ->> 'answer', 100) || ' ...' AS answer;
