\i test/regress/setup.psql
-- The summary chain: datacore.summarize and datacore.summary_cached.  The
-- prompt within its budget as the model sees it, the stored object, the
-- cache, a stale answer for every kind of AI failure with one refresh job
-- per key, the refresh, PT503, S3 and Redis down, READ ONLY, privileges.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_chain;
DROP ROLE IF EXISTS regress_chain_none;
SELECT dc_test.s3_drop_bucket('regress-chain');
RESET client_min_messages;
CREATE ROLE regress_chain;
CREATE ROLE regress_chain_none;
GRANT USAGE ON SCHEMA datacore, dc_test TO regress_chain, regress_chain_none;
-- five failures and more on one server: its breaker must not open (except below)
ALTER SERVER ollama OPTIONS (ADD breaker_threshold '0', ADD timeout_ms '1000');
-- a model server and a Redis that are down (nothing listens on port 1)
CREATE SERVER regress_ollama_down FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', model 'llama3.2', breaker_threshold '0');
CREATE SERVER regress_redis_down FOREIGN DATA WRAPPER datacore_redis
	OPTIONS (host '127.0.0.1', port '1');
CREATE USER MAPPING FOR PUBLIC SERVER regress_redis_down OPTIONS (password 'unused');
GRANT USAGE ON FOREIGN SERVER ollama, minio, redis, regress_ollama_down, regress_redis_down
	TO regress_chain;
SELECT datacore.s3_create_bucket('regress-chain');
SELECT datacore.redis_del(ARRAY(SELECT 'datacore:summary:regress_chain:' || k
	FROM unnest(ARRAY['events', 'budget', 'fails', 'twenty', 'never', 'brk', 's3down', 'nobucket']) k));

-- the outcome of a statement: 'ok', or its SQLSTATE and message
CREATE FUNCTION dc_test.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- a result document without what varies from run to run
CREATE FUNCTION dc_test.doc(d jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT d - 'generated_at' - 'object' - 'stale_reason' - 'refresh_job'
		|| jsonb_build_object('object', regexp_replace(d->>'object', '\d{8}T\d{6}Z', '<ts>'),
							  'stale_reason', left(d->>'stale_reason', 5))
$$;
-- the stand-ins' switches and logs, for regress_chain too
CREATE FUNCTION dc_test.set_fault(service text, spec jsonb) RETURNS void
	LANGUAGE sql SECURITY DEFINER AS $$SELECT dc_test.fault(service, spec)$$;
CREATE FUNCTION dc_test.clear(service text) RETURNS void
	LANGUAGE sql SECURITY DEFINER AS $$SELECT dc_test.clear_log(service)$$;
CREATE FUNCTION dc_test.generate_log() RETURNS SETOF jsonb LANGUAGE sql SECURITY DEFINER AS $$
	SELECT l FROM dc_test.log('ollama') l WHERE l->>'path' = '/api/generate'
$$;
CREATE FUNCTION dc_test.generate_requests() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM dc_test.generate_log()
$$;
CREATE FUNCTION dc_test.refresh_jobs(key text) RETURNS TABLE(state text, n bigint) LANGUAGE sql AS $$
	SELECT j.state, count(*) FROM datacore.jobs j
	 WHERE j.kind = 'summarize' AND j.args->>'cache_key' = key GROUP BY 1 ORDER BY 1
$$;
CREATE TABLE dc_test.events AS
	SELECT i AS id, (ARRAY['login', 'upload', 'logout'])[1 + i % 3] AS event_type
	  FROM generate_series(1, 10) i;
GRANT SELECT ON dc_test.events TO regress_chain;
-- a call after a fault: what its answer says
CREATE FUNCTION dc_test.stale_after(fault jsonb, server name DEFAULT 'ollama') RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	d jsonb;
BEGIN
	PERFORM datacore.redis_del('datacore:summary:regress_chain:fails');
	PERFORM dc_test.set_fault('ollama', fault);
	d := datacore.summarize('[2]', 'Summarize:', 'fails', ollama_server => server);
	PERFORM dc_test.set_fault('ollama', NULL);
	RETURN jsonb_build_object('stale', d->'stale', 'cached', d->'cached', 'message', d->'message',
							  'reason', left(d->>'stale_reason', 5), 'summary', d->'summary');
END $$;
-- the hint of a PT503 (where Retry-After comes from)
CREATE FUNCTION dc_test.pt503_hint(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	h text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN SQLSTATE 'PT503' THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RETURN h;
END $$;

SET ROLE regress_chain;
-- arguments: what the caller got wrong is raised at once
SELECT dc_test.try($$SELECT datacore.summarize(NULL, 'Summarize:', 'k')$$);
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', '')$$);
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'k', cache_ttl => '0')$$);
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'k', max_prompt_chars => 0)$$);
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'k', object_key => 'x.json')$$);
SELECT dc_test.try($$SELECT datacore.summarize('[1, 2]', 'Summarize these events:', 'k', max_prompt_chars => 20)$$);
SELECT dc_test.try($$SELECT datacore.summarize('{"a": "long enough"}', 'Summarize:', 'k', max_prompt_chars => 20)$$);
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'k', ollama_server => 'no_such')$$);
SELECT dc_test.generate_requests() AS requests_so_far;

-- cold: the prompt within the budget, the model, the object in S3
SELECT dc_test.clear('ollama');
SELECT datacore.summarize(
	(SELECT jsonb_agg(jsonb_build_object('id', id, 'event_type', event_type) ORDER BY id) FROM dc_test.events),
	'Summarize these events:', 'budget', bucket => 'regress-chain', max_prompt_chars => 150) AS doc \gset
SELECT dc_test.doc(:'doc');
SELECT l->'body'->>'prompt' AS prompt, length(l->'body'->>'prompt') AS prompt_chars,
	   l->'body'->>'stream' AS stream, l->'body'->>'model' AS model
  FROM dc_test.generate_log() l;
-- the stored object is the document (the flags of this call aside)
SELECT datacore.s3_get_text('regress-chain', substr(:'doc'::jsonb->>'object', length('s3://regress-chain/') + 1))::jsonb
	= (:'doc'::jsonb - 'cached' - 'stale' - 'stored') AS object_is_document;
SELECT key ~ '^summary-\d{8}T\d{6}Z\.json$' AS default_key FROM datacore.s3_list('regress-chain');
-- an object key of one's own, and every row within the default budget
SELECT dc_test.doc(datacore.summarize(
	(SELECT jsonb_agg(to_jsonb(e) ORDER BY id) FROM dc_test.events e),
	'Summarize these events:', 'events', cache_ttl => '1 hour', bucket => 'regress-chain',
	object_key => 'daily/events.json', options => '{"temperature": 0.2}'));
SELECT l->'body'->'options' AS options FROM dc_test.generate_log() l
 ORDER BY (l->>'seq')::int DESC LIMIT 1;
SELECT datacore.redis_ttl('datacore:summary:regress_chain:events') > '59 minutes' AS ttl_set;

-- cached: no model request; summary_cached gives the same document
SELECT dc_test.clear('ollama');
SELECT dc_test.doc(datacore.summarize('[]', 'Summarize these events:', 'events'));
SELECT dc_test.doc(datacore.summary_cached('events'));
SELECT datacore.summary_cached('no-such-key') IS NULL AS miss_is_null;
SELECT dc_test.generate_requests() AS model_requests_when_cached;

-- every kind of AI failure: the last good result, flagged stale, and one
-- refresh job for the key however many calls fail
SELECT datacore.summarize('[1]', 'Summarize:', 'fails')->>'stale' AS fresh_first;
SELECT dc_test.stale_after('{"mode": "status", "status": 500}') AS http_500;
SELECT dc_test.stale_after('{"mode": "status", "status": 503, "retry_after": 1}') AS http_503;
SELECT dc_test.stale_after('{"mode": "status", "status": 429}') AS http_429;
SELECT dc_test.stale_after('{"mode": "malformed"}') AS malformed;
SELECT dc_test.stale_after('{"mode": "hang"}') AS hang_past_timeout;
SELECT dc_test.stale_after(jsonb_build_object('mode', 'content_type', 'type', 'application/x-ndjson',
	'body', E'{"model":"llama3.2","response":"Today","done":false}\n{"error":"model runner has unexpectedly stopped"}\n'))
	AS error_line_mid_stream;
SELECT dc_test.stale_after(NULL, 'regress_ollama_down') AS down;
SELECT * FROM dc_test.refresh_jobs('fails');
SELECT dc_test.clear('ollama');
SELECT datacore.summarize('[3]', 'Summarize:', 'twenty')->>'stale' AS fresh_first;
SELECT datacore.redis_del('datacore:summary:regress_chain:twenty');
SELECT dc_test.set_fault('ollama', '{"mode": "status", "status": 500}');
-- twenty calls, each in its own transaction, as twenty requests would be
DO $$
DECLARE
	n integer := 0;
BEGIN
	FOR i IN 1..20 LOOP
		IF (datacore.summarize('[4]', 'Summarize:', 'twenty')->>'stale')::boolean THEN
			n := n + 1;
		END IF;
		COMMIT;
	END LOOP;
	RAISE NOTICE 'stale answers: %', n;
END $$;
SELECT * FROM dc_test.refresh_jobs('twenty');
SELECT dc_test.set_fault('ollama', NULL);
-- errors the caller caused are raised, never answered stale
SELECT datacore.redis_del('datacore:summary:regress_chain:fails');
SELECT dc_test.try($$SELECT datacore.summarize('[5]', 'Summarize:', 'fails', model => 'no-such-model')$$);
RESET ROLE;
-- the refresh runs as the role that queued it, once the AI is back, and the
-- cache then holds the fresh result
UPDATE datacore.jobs SET run_after = now() WHERE kind = 'summarize' AND args->>'cache_key' = 'fails';
SELECT dc_test.clear('ollama');
SELECT datacore.run_jobs() >= 0 AS ran;
SELECT datacore.job_wait(id, '30 seconds')->>'stale' AS refreshed_stale FROM datacore.jobs
 WHERE kind = 'summarize' AND args->>'cache_key' = 'fails';
SELECT * FROM dc_test.refresh_jobs('fails');
SELECT owner, result->>'stale' AS stale, result->>'summary' AS summary FROM datacore.jobs
 WHERE kind = 'summarize' AND args->>'cache_key' = 'fails';
SELECT l->'body'->>'prompt' AS refreshed_prompt FROM dc_test.generate_log() l;
SET ROLE regress_chain;
SELECT datacore.summary_cached('fails')->>'summary' AS cached_summary,
	   datacore.summary_cached('fails')->>'stale' AS stale;
-- a refresh queued before a later call found the model back keeps that newer
-- result instead of overwriting it with its older rows
SELECT datacore.redis_del('datacore:summary:regress_chain:twenty');
SELECT datacore.summarize('["newer"]', 'Summarize:', 'twenty')->>'summary' AS newer;
RESET ROLE;
UPDATE datacore.jobs SET run_after = now() WHERE kind = 'summarize' AND args->>'cache_key' = 'twenty';
SELECT dc_test.clear('ollama');
SELECT datacore.run_jobs() >= 0 AS ran;
SELECT datacore.job_wait(id, '30 seconds')->>'superseded' AS superseded FROM datacore.jobs
 WHERE kind = 'summarize' AND args->>'cache_key' = 'twenty';
SELECT dc_test.generate_requests() AS model_requests_of_superseded_refresh;
SET ROLE regress_chain;
SELECT datacore.summary_cached('twenty')->>'summary' AS still_newer;

-- nothing ever stored and the AI failing: PT503 (PostgREST: 503) with the
-- time to retry, and the refresh queued even though the call failed
SELECT dc_test.try($$SELECT datacore.summarize('[6]', 'Summarize:', 'never', ollama_server => 'regress_ollama_down')$$);
SELECT * FROM dc_test.refresh_jobs('never');

-- an open breaker is an AI failure too; PT503's Retry-After is its next probe
RESET ROLE;
DO $$
BEGIN
	EXECUTE format('CREATE SERVER regress_ollama_brk FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url %L, '
				   'model %L, breaker_threshold %L, breaker_cooldown_ms %L)',
				   'http://127.0.0.1:' || (SELECT port FROM dc_test.ports WHERE service = 'ollama'),
				   'llama3.2', '2', '60000');
END $$;
GRANT USAGE ON FOREIGN SERVER regress_ollama_brk TO regress_chain;
SET ROLE regress_chain;
SELECT datacore.summarize('[7]', 'Summarize:', 'brk', ollama_server => 'regress_ollama_brk')->>'stale' AS fresh_first;
SELECT datacore.redis_del('datacore:summary:regress_chain:brk');
SELECT dc_test.set_fault('ollama', '{"mode": "status", "status": 503}');
SELECT left(datacore.summarize('[7]', 'Summarize:', 'brk', ollama_server => 'regress_ollama_brk')->>'stale_reason', 5)
	AS failure_1;
SELECT left(datacore.summarize('[7]', 'Summarize:', 'brk', ollama_server => 'regress_ollama_brk')->>'stale_reason', 5)
	AS failure_2;
SELECT state FROM datacore.breakers WHERE server = 'regress_ollama_brk';
SELECT dc_test.set_fault('ollama', NULL);
SELECT dc_test.clear('ollama');
SELECT datacore.summarize('[7]', 'Summarize:', 'brk', ollama_server => 'regress_ollama_brk')->>'stale_reason' AS breaker_open;
SELECT dc_test.generate_requests() AS requests_while_open;
SELECT substring(dc_test.pt503_hint($$SELECT datacore.summarize('[7]', 'Summarize:', 'brk-new', ollama_server => 'regress_ollama_brk')$$)
	from '\d+')::int BETWEEN 50 AND 60 AS retry_after_is_next_probe;
SELECT dc_test.pt503_hint($$SELECT datacore.summarize('[7]', 'Summarize:', 'never', ollama_server => 'regress_ollama_down')$$)
	AS retry_after_default;

-- S3 down: the result is returned and cached, the store queued as an s3_put job
SELECT dc_test.set_fault('s3', '{"mode": "status", "status": 503}');
SELECT dc_test.doc(datacore.summarize('[8]', 'Summarize:', 's3down', bucket => 'regress-chain',
									   object_key => 'later.json'));
SELECT dc_test.set_fault('s3', NULL);
SELECT kind, args->>'bucket' AS bucket, args->>'key' AS key, args->'body_json'->>'summary' AS summary
  FROM datacore.jobs WHERE kind = 's3_put';
SELECT datacore.summary_cached('s3down')->>'stored' AS cached_says_stored;
SELECT datacore.job_wait((SELECT id FROM datacore.jobs WHERE kind = 's3_put'), '30 seconds') IS NOT NULL AS s3_put_done;
SELECT datacore.s3_get_text('regress-chain', 'later.json')::jsonb->>'summary' AS stored_later;

-- Redis down: the chain still answers, uncached, and the metric says so
SELECT dc_test.doc(datacore.summarize('[9]', 'Summarize:', 'nobucket', redis_server => 'regress_redis_down'));
RESET ROLE;
SELECT requests, errors_by_class FROM datacore.metrics
 WHERE server = 'regress_redis_down' AND operation = 'summarize';
SELECT cache_hits > 0 AS hits_counted, cache_misses > 0 AS misses_counted FROM datacore.metrics
 WHERE server = 'redis' AND operation = 'summarize';

-- READ ONLY: refused every time, cached or not, unless a superuser allows it
SET ROLE regress_chain;
BEGIN READ ONLY;
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize these events:', 'events')$$);
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'not-cached')$$);
SELECT dc_test.try($$SELECT datacore.summary_cached('events')$$);
SELECT dc_test.try($$SELECT datacore.redis_set('regress-chain', 'x')$$);
ROLLBACK;
SELECT dc_test.try($$SET datacore.remote_writes_in_read_only = on$$);
RESET ROLE;
SET datacore.remote_writes_in_read_only = on;
SET ROLE regress_chain;
BEGIN READ ONLY;
SELECT datacore.summary_cached('events')->>'cached' AS cached_in_read_only;
SELECT dc_test.try($$SELECT datacore.redis_set('regress-chain', 'x')$$) AS redis_write;
SELECT dc_test.try($$SELECT datacore.s3_put('regress-chain', 'ro.txt', 'x'::text)$$) AS s3_write;
-- a summary is computed, stored and cached; the tables stay read-only
SELECT dc_test.doc(datacore.summarize('[10]', 'Summarize:', 'read-only'));
ROLLBACK;
SELECT count(*) AS last_good_from_read_only FROM datacore.summaries WHERE cache_key = 'read-only';
RESET ROLE;
RESET datacore.remote_writes_in_read_only;

-- privileges: USAGE on the servers, and each role's last-good rows its own
SET ROLE regress_chain_none;
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'events')$$);
SELECT dc_test.try($$SELECT datacore.summary_cached('events')$$);
SELECT count(*) AS others_last_good FROM datacore.summaries;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER redis TO regress_chain_none;
SET ROLE regress_chain_none;
-- the cache is per role (a miss here), and no USAGE on the model is raised, not stale
SELECT dc_test.try($$SELECT datacore.summarize('[]', 'Summarize:', 'events')$$);
RESET ROLE;
SELECT owner, cache_key, result->>'rows' AS rows FROM datacore.summaries ORDER BY cache_key;

-- clean up
SELECT datacore.redis_del(ARRAY(SELECT 'datacore:summary:regress_chain:' || cache_key FROM datacore.summaries));
SELECT datacore.redis_del(ARRAY['regress-chain', 'datacore:summary:regress_chain:read-only']);
SELECT dc_test.s3_drop_bucket('regress-chain');
DELETE FROM datacore.summaries;
DELETE FROM datacore.jobs;
DROP TABLE dc_test.events;
DROP SERVER regress_ollama_down, regress_redis_down, regress_ollama_brk CASCADE;
DROP OWNED BY regress_chain, regress_chain_none;
DROP ROLE regress_chain;
DROP ROLE regress_chain_none;
\i test/regress/teardown.psql
