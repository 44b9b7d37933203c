-- Objects the load run needs in its own database (test/load/run.sh loads
-- docs/examples/aerovista-servers.sql and the chain's schema first): the
-- bucket, collection and objects the scripts read, the activity rows the
-- chain summarises, and load.chain(), which calls the chain RPC, checks its
-- answer and records whether it was cached, fresh or stale.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- The AI node flaps in the second phase: fail fast while it is down and let
-- a probe through 2 s after the breaker opens, so fresh answers come back
-- soon after it does (the demo's 60 s timeout and 30 s cooldown would
-- outlast an up window of 10 s).
ALTER SERVER ollama OPTIONS (SET timeout_ms '5000', SET breaker_cooldown_ms '2000');
-- Errors in the server log carry their SQLSTATE ("ERROR:  XX000: ...").
SELECT format('ALTER DATABASE %I SET log_error_verbosity = verbose', current_database()) \gexec

CREATE SCHEMA load;

CREATE UNLOGGED TABLE load.outcomes (script text NOT NULL, outcome text NOT NULL);

-- One call of the RPC as PostgREST makes it for POST
-- /rpc/get_recent_activity_summary {"hours": N}, from a caller of its own
-- (a "sub" claim per call: the RPC allows 10 calls a minute per caller, and
-- the load stands for many callers, not one).  cold drops the cached answer
-- first, as if its 300 s had run out, so the whole chain runs.  The answer
-- must carry a summary and a stale flag; whether it came from the cache,
-- fresh from the model or stale is recorded per script.  Anything else
-- raises, which fails the transaction.
CREATE FUNCTION load.chain(hours integer, script text, cold boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	r		jsonb;
	outcome	text;
BEGIN
	PERFORM set_config('request.jwt.claims',
					   jsonb_build_object('sub', 'load-' || gen_random_uuid(), 'role', 'web_anon')::text,
					   true);
	IF cold THEN
		-- the Redis key of the RPC's cache key: datacore:summary:<role>:<cache_key>
		-- (docs/chains.md), the role being the RPC's owner
		PERFORM datacore.redis_del(format('datacore:summary:aerovista_owner:aerovista:activity-summary:%sh',
										  hours));
	END IF;
	r := public.get_recent_activity_summary(hours);
	IF jsonb_typeof(r -> 'summary') IS DISTINCT FROM 'string'
		OR jsonb_typeof(r -> 'stale') IS DISTINCT FROM 'boolean' THEN
		RAISE EXCEPTION 'the chain answered without a summary and a stale flag'
			USING DETAIL = format('The answer was %s.', left(r::text, 200));
	END IF;
	outcome := CASE WHEN (r ->> 'stale')::boolean THEN 'stale'
					WHEN (r ->> 'cached')::boolean THEN 'cached'
					ELSE 'fresh' END;
	INSERT INTO load.outcomes VALUES (script, outcome);
	RETURN outcome;
END $$;

CREATE FUNCTION load.random_vector() RETURNS real[]
LANGUAGE sql VOLATILE AS $$
	SELECT array_agg(random()::real) FROM generate_series(1, 8)
$$;

-- The counters before a phase, to report what the phase itself added.
CREATE TABLE load.metrics_before AS
	SELECT server, operation, requests, errors FROM datacore.metrics WITH NO DATA;

-- S3: 200 objects of 1 KiB to read; the chain stores its documents in
-- "summaries".
SELECT datacore.s3_create_bucket('load');
DO $$
BEGIN
	PERFORM datacore.s3_create_bucket('summaries');
EXCEPTION WHEN duplicate_object THEN
	NULL;
END $$;
SELECT count(datacore.s3_put('load', 'small/' || g, repeat('s', 1024), 'text/plain'))
	FROM generate_series(1, 200) g;

-- Qdrant: 1,000 points of dimension 8.
SELECT datacore.qdrant_drop_collection('load', if_exists => true);
SELECT datacore.qdrant_create_collection('load', 8);
SELECT datacore.qdrant_upsert('load',
		(SELECT jsonb_agg(jsonb_build_object('id', g, 'vector', to_jsonb(load.random_vector()),
											 'payload', jsonb_build_object('n', g)))
		   FROM generate_series(1, 1000) g));

-- 200 events over the last 23 hours for the chain to summarise.
INSERT INTO public.activity_logs (created_at, event_type, user_id, details)
SELECT now() - make_interval(mins => 7 * g),
	   (ARRAY['login', 'file_upload', 'login_failed', 'export_report', 'update_settings'])[1 + g % 5],
	   (ARRAY['alice', 'bob', 'ci-bot', 'carol'])[1 + g % 4],
	   jsonb_build_object('ip', format('10.0.0.%s', g % 250), 'ok', g % 5 <> 2)
  FROM generate_series(1, 200) g;

-- Every cache key the scripts use has a cached answer and a last good copy
-- before the run, so the cached path is answered from Redis and a stale
-- answer is always possible later (no PT503 for "nothing stored yet").
SELECT datacore.redis_del(ARRAY(
		SELECT format('datacore:summary:aerovista_owner:aerovista:activity-summary:%sh', h)
		  FROM generate_series(1, 24) h));
DO $$
BEGIN
	IF (SELECT count(*) FILTER (WHERE load.chain(h, 'prime') = 'fresh')
		  FROM generate_series(1, 24) h) <> 24 THEN
		RAISE EXCEPTION 'not every cache key could be primed';
	END IF;
END $$;
TRUNCATE load.outcomes;
