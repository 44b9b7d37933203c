-- AeroVista: the "recent activity summary" chain, run inside PostgreSQL.
--
--   POST /rpc/get_recent_activity_summary  {"hours": 24}
--     1. Redis:  a cached summary for these hours?        -> return it
--     2. SQL:    the activity of the last N hours
--     3. Ollama: summarise it
--     4. S3:     store the summary as JSON in bucket "summaries"
--     5. Redis:  cache it with a TTL, and keep it as the last good answer
--   When the AI node is down, the last good answer is returned flagged "stale".
--
-- Needs the extension and the servers ollama, minio and redis (see
-- aerovista-servers.sql), and a bucket named "summaries".  The functions run as
-- their owner (SECURITY DEFINER), so the PostgREST role web_anon gets EXECUTE
-- on two RPCs and USAGE on the schemas, nothing else: no USAGE on any server,
-- no table access.

CREATE EXTENSION IF NOT EXISTS datacore;

CREATE SCHEMA aerovista;

CREATE TABLE aerovista.activity_logs (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	occurred_at timestamptz NOT NULL DEFAULT now(),
	actor		text NOT NULL,
	action		text NOT NULL,
	detail		jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ON aerovista.activity_logs (occurred_at);

-- Cache time-to-live and model settings, in one place.
CREATE TABLE aerovista.settings (
	cache_ttl	interval NOT NULL DEFAULT '10 minutes',
	bucket		text NOT NULL DEFAULT 'summaries',
	model		text,				-- NULL: the ollama server's "model" option
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);
INSERT INTO aerovista.settings DEFAULT VALUES;

-- GET /rpc/get_recent_activity?hours=24 — read-only, so STABLE (PostgREST
-- allows GET only for STABLE/IMMUTABLE functions).
CREATE FUNCTION aerovista.get_recent_activity(hours integer DEFAULT 24)
RETURNS SETOF aerovista.activity_logs
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT *
	FROM aerovista.activity_logs
	WHERE occurred_at >= now() - make_interval(hours => hours)
	ORDER BY occurred_at DESC
	LIMIT 500
$$;

-- POST /rpc/get_recent_activity_summary {"hours": 24} — VOLATILE: it writes
-- to S3 and Redis.
CREATE FUNCTION aerovista.get_recent_activity_summary(hours integer DEFAULT 24)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cfg			aerovista.settings;
	cache_key	text := format('aerovista:summary:%s', hours);
	last_key	text := format('aerovista:summary:%s:last', hours);
	cached		text;
	activity	jsonb;
	n			integer;
	summary		text;
	object_key	text;
	result		jsonb;
BEGIN
	IF hours IS NULL OR hours < 1 OR hours > 24 * 31 THEN
		RAISE EXCEPTION 'hours must be between 1 and 744'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT * INTO cfg FROM aerovista.settings;

	-- 1. cache
	cached := datacore.redis_get(cache_key);
	IF cached IS NOT NULL THEN
		RETURN cached::jsonb || '{"cached": true, "stale": false}';
	END IF;

	-- 2. the rows
	SELECT count(*), coalesce(jsonb_agg(jsonb_build_object(
				'at', to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'),
				'actor', a.actor, 'action', a.action, 'detail', a.detail)), '[]')
		INTO n, activity
		FROM aerovista.get_recent_activity(hours) a;

	-- 3. the model; if the AI node is unreachable, serve the last good answer
	BEGIN
		summary := datacore.ollama_generate(
			format('Summarise this activity log of the last %s hours in three sentences '
				   'for an operations dashboard: %s', hours, activity::text),
			model => cfg.model,
			system => 'You are a concise operations analyst.',
			options => '{"temperature": 0.2}');
	EXCEPTION WHEN connection_exception THEN
		cached := datacore.redis_get(last_key);
		IF cached IS NULL THEN
			RAISE;
		END IF;
		RETURN cached::jsonb || jsonb_build_object('cached', true, 'stale', true,
												   'stale_reason', SQLERRM);
	END;

	result := jsonb_build_object(
		'hours', hours,
		'activity_count', n,
		'summary', summary,
		'generated_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));

	-- 4. object storage: one JSON document per summary
	object_key := format('activity/%s/last-%sh-%s.json',
						 to_char(now() AT TIME ZONE 'UTC', 'YYYY/MM/DD'), hours,
						 to_char(now() AT TIME ZONE 'UTC', 'HH24MISS'));
	PERFORM datacore.s3_put(cfg.bucket, object_key, result, 'application/json');
	result := result || jsonb_build_object('object', format('s3://%s/%s', cfg.bucket, object_key));

	-- 5. cache, and remember it as the last good answer (no TTL)
	PERFORM datacore.redis_set(cache_key, result::text, cfg.cache_ttl);
	PERFORM datacore.redis_set(last_key, result::text);

	RETURN result || '{"cached": false, "stale": false}';
END
$$;

-- PostgREST's anonymous role: the two RPCs and nothing else.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'web_anon') THEN
		CREATE ROLE web_anon NOLOGIN;
	END IF;
END $$;
REVOKE ALL ON FUNCTION aerovista.get_recent_activity(integer),
				  aerovista.get_recent_activity_summary(integer) FROM PUBLIC;
GRANT USAGE ON SCHEMA aerovista TO web_anon;
-- Naming datacore's functions gives nothing: without USAGE on a server they
-- reach no service (42501), which is the fence the RPCs are built around.
GRANT USAGE ON SCHEMA datacore TO web_anon;
GRANT EXECUTE ON FUNCTION aerovista.get_recent_activity(integer),
					  aerovista.get_recent_activity_summary(integer) TO web_anon;
