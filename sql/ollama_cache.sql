-- The model-response cache: answers of generate and chat kept in Redis,
-- per call (cache_ttl) or per Ollama server (cache_server, cache_ttl) for
-- deterministic requests only; the stand-in's request log shows what
-- reached the model.
\i test/regress/setup.psql
\set SHOW_CONTEXT never

CREATE FUNCTION regress_cache_keys() RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(k ORDER BY k), '{}')
	  FROM jsonb_array_elements_text(
		datacore.redis_command('{SCAN,0,MATCH,datacore:ollama:*,COUNT,100000}') -> 1) k
$$;
CREATE FUNCTION regress_cache_clear() RETURNS int LANGUAGE sql AS $$
	SELECT count(datacore.redis_del(k))::int FROM unnest(regress_cache_keys()) k
$$;
CREATE FUNCTION regress_requests() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM dc_test.log('ollama')
$$;
CREATE FUNCTION regress_lookups(op text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(sum(cache_hits), 0) || ' hits, ' || coalesce(sum(cache_misses), 0) || ' misses'
	  FROM datacore.metrics WHERE server = 'ollama' AND operation = op
$$;
SELECT regress_cache_clear() >= 0 AS cleared;
SELECT datacore.reset_metrics();

-- per call: the second identical call is answered from Redis
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('Cache me', cache_ttl => '1 minute') AS first;
SELECT datacore.ollama_generate('Cache me', cache_ttl => '1 minute') AS second;
SELECT regress_requests() AS requests, regress_lookups('ollama_generate') AS lookups;
-- one key, living as long as asked
SELECT cardinality(regress_cache_keys()) AS keys,
	   (datacore.redis_command(ARRAY['PTTL', (regress_cache_keys())[1]]) #>> '{}')::int
		 BETWEEN 1 AND 60000 AS ttl_ok;
-- another prompt, system, model or option is another entry
SELECT datacore.ollama_generate('Cache me too', cache_ttl => '1 minute') IS NOT NULL AS answered;
SELECT datacore.ollama_generate('Cache me', system => 'Be brief.', cache_ttl => '1 minute') IS NOT NULL AS answered;
SELECT datacore.ollama_generate('Cache me', options => '{"top_k": 3}', cache_ttl => '1 minute') IS NOT NULL AS answered;
SELECT regress_requests() AS requests, cardinality(regress_cache_keys()) AS keys;
-- without cache_ttl and with no server cache, nothing is looked up
SELECT datacore.ollama_generate('Cache me') IS NOT NULL AS answered;
SELECT regress_requests() AS requests;

-- the whole reply is cached apart from the text, and comes back the same
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate_json('Cache me', cache_ttl => '1 minute') AS r1 \gset
SELECT datacore.ollama_generate_json('Cache me', cache_ttl => '1 minute') = :'r1'::jsonb AS same_reply;
SELECT regress_requests() AS requests, regress_lookups('ollama_generate_json') AS lookups;

-- chat: keyed by the messages (and tools)
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_chat('[{"role": "user", "content": "Hello"}]', cache_ttl => '1 minute') AS c1 \gset
SELECT datacore.ollama_chat('[{"role": "user", "content": "Hello"}]', cache_ttl => '1 minute') = :'c1'::jsonb AS same_message;
SELECT datacore.ollama_chat('[{"role": "user", "content": "Hello!"}]', cache_ttl => '1 minute') IS NOT NULL AS answered;
SELECT regress_requests() AS requests;

-- per server: only deterministic requests (temperature 0 or a seed)
SELECT regress_cache_clear() > 0 AS cleared;
ALTER SERVER ollama OPTIONS (ADD cache_server 'redis', ADD cache_ttl '60');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('Sampled') IS NOT NULL AS a,
	   datacore.ollama_generate('Sampled') IS NOT NULL AS b;
SELECT regress_requests() AS sampled_requests, cardinality(regress_cache_keys()) AS keys;
SELECT datacore.ollama_generate('Greedy', options => '{"temperature": 0}') IS NOT NULL AS a,
	   datacore.ollama_generate('Greedy', options => '{"temperature": 0}') IS NOT NULL AS b,
	   datacore.ollama_generate('Seeded', options => '{"seed": 42, "temperature": 0.8}') IS NOT NULL AS c,
	   datacore.ollama_generate('Seeded', options => '{"seed": 42, "temperature": 0.8}') IS NOT NULL AS d;
SELECT regress_requests() AS requests, cardinality(regress_cache_keys()) AS keys;
-- an explicit cache_ttl still caches a sampled request
SELECT datacore.ollama_generate('Sampled', cache_ttl => '10 seconds') IS NOT NULL AS a,
	   datacore.ollama_generate('Sampled', cache_ttl => '10 seconds') IS NOT NULL AS b;
SELECT regress_requests() AS requests;

-- Redis unreachable: the call still answers, from the model, every time
CREATE SERVER regress_dead_redis FOREIGN DATA WRAPPER datacore_redis
	OPTIONS (host '127.0.0.1', port '1', connect_timeout_ms '200', breaker_threshold '0');
ALTER SERVER ollama OPTIONS (SET cache_server 'regress_dead_redis');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('Greedy', options => '{"temperature": 0}') IS NOT NULL AS a,
	   datacore.ollama_generate('Greedy', options => '{"temperature": 0}') IS NOT NULL AS b;
SELECT regress_requests() AS requests;

-- the cache server is reached with the caller's rights: USAGE is needed
CREATE ROLE regress_cache_user;
GRANT USAGE ON SCHEMA datacore TO regress_cache_user;
GRANT USAGE ON FOREIGN SERVER ollama TO regress_cache_user;
ALTER SERVER ollama OPTIONS (SET cache_server 'redis');
SET ROLE regress_cache_user;
SELECT datacore.ollama_generate('Greedy', options => '{"temperature": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.ollama_generate('Uncached') IS NOT NULL AS answered_without_cache;
RESET ROLE;

-- option values are checked
ALTER SERVER ollama OPTIONS (SET cache_ttl '-1');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER ollama OPTIONS (SET cache_ttl 'forever');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.ollama_generate('x', cache_ttl => '0 seconds');
\echo :LAST_ERROR_SQLSTATE

-- clean up
ALTER SERVER ollama OPTIONS (DROP cache_server, DROP cache_ttl);
SELECT regress_cache_clear() > 0 AS cleared;
DROP SERVER regress_dead_redis;
REVOKE ALL ON FOREIGN SERVER ollama FROM regress_cache_user;
REVOKE ALL ON SCHEMA datacore FROM regress_cache_user;
DROP ROLE regress_cache_user;
DROP FUNCTION regress_cache_keys(), regress_cache_clear(), regress_requests(), regress_lookups(text);
\i test/regress/teardown.psql
