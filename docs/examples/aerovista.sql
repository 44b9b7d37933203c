-- AeroVista on DataCore: the activity log, its PostgREST RPCs and the
-- scheduled summary, in schema public (PostgREST: db-schemas = "public").
--
--   GET  /rpc/get_recent_activity?hours=48          counts per event type
--   POST /rpc/get_recent_activity_summary {"hours": 24}
--        rate limit (10 per minute per caller) -> Redis cache (300 s)
--        -> counts -> "Summarize these events: ..." -> Ollama
--        -> summaries/activity-<hours>h-<timestamp>.json -> Redis; the last good answer, flagged
--        stale, while the AI node is down (datacore.summarize, docs/chains.md)
--   cron: public.summarize_recent_logs()            Pattern 2, 100 latest rows
--        -> "Summarize these activity logs:" -> Ollama
--        -> summaries/summary-<timestamp>.json
--   db-pre-request: app.authenticate_service()      only the gateway gets in
--
-- Needs the extension and the servers ollama, minio and redis (see
-- aerovista-servers.sql) and the bucket "summaries".  Run as a superuser.
--
-- Privileges: the functions are SECURITY DEFINER, owned by aerovista_owner,
-- the one role with USAGE on schema datacore and on the servers.  web_anon,
-- PostgREST's anonymous role, gets USAGE on public, EXECUTE on the two RPCs,
-- SELECT on the view, and (PostgREST calls the pre-request function as the
-- request's role) USAGE on schema app and EXECUTE on app.authenticate_service:
-- no table, no server, no USAGE on schema datacore.  PUBLIC keeps the
-- extension's EXECUTE on datacore's functions, which gives web_anon nothing:
-- it cannot name them without USAGE on schema datacore, and each refuses a
-- role without USAGE on its server (42501 either way).

CREATE EXTENSION IF NOT EXISTS datacore;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'web_anon') THEN
		CREATE ROLE web_anon NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aerovista_owner') THEN
		CREATE ROLE aerovista_owner NOLOGIN;
	END IF;
END $$;
GRANT USAGE ON SCHEMA datacore TO aerovista_owner;
GRANT USAGE ON FOREIGN SERVER ollama, minio, redis TO aerovista_owner;

-- Helpers and the service's secret, outside the schema PostgREST exposes.
CREATE SCHEMA app AUTHORIZATION aerovista_owner;

-- The caller a rate limit counts against: the JWT's "sub", else its role
-- (PostgREST always puts the role into the claims), else the session's.
-- A setting set earlier in the session reads as '' afterwards, not NULL.
CREATE FUNCTION app.caller() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce('sub:' || nullif(c ->> 'sub', ''),
					'role:' || coalesce(nullif(c ->> 'role', ''), session_user::text))
	FROM (SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb AS c) s
$$;
ALTER FUNCTION app.caller() OWNER TO aerovista_owner;

CREATE TABLE public.activity_logs (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	created_at	timestamptz NOT NULL DEFAULT now(),
	event_type	text NOT NULL,
	user_id		text,
	details		jsonb NOT NULL DEFAULT '{}'
);
-- Both queries read the newest rows: the counts per event type of the last
-- N hours (an index-only scan, thanks to INCLUDE) and Pattern 2's 100 latest.
CREATE INDEX activity_logs_created_at ON public.activity_logs (created_at) INCLUDE (event_type);
ALTER TABLE public.activity_logs OWNER TO aerovista_owner;

CREATE VIEW public.activity_summary AS
	SELECT date_trunc('hour', created_at) AS hour, event_type, count(*) AS event_count
	FROM public.activity_logs
	GROUP BY 1, 2;
ALTER VIEW public.activity_summary OWNER TO aerovista_owner;

-- GET /rpc/get_recent_activity?hours=48 -> [{"event_type":"login","count":15}, ...]
-- STABLE, so PostgREST runs it READ ONLY and allows GET.
CREATE FUNCTION public.get_recent_activity(hours int DEFAULT 24)
RETURNS TABLE(event_type text, count bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.event_type, count(*)
	FROM public.activity_logs a
	WHERE a.created_at > now() - interval '1 hour' * hours
	GROUP BY a.event_type
	ORDER BY count(*) DESC, a.event_type
$$;
ALTER FUNCTION public.get_recent_activity(int) OWNER TO aerovista_owner;

-- POST /rpc/get_recent_activity_summary {"hours": 24}
-- VOLATILE: it writes to S3 and Redis, so PostgREST allows only POST; a GET
-- (a READ ONLY transaction) is refused with 25006 (HTTP 405) by
-- summary_cached, before the rate limit counts the call, cached or not.
CREATE FUNCTION public.get_recent_activity_summary(hours int DEFAULT 24)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cache_key	text;
	result		jsonb;
	counts		jsonb;
BEGIN
	IF hours IS NULL OR hours NOT BETWEEN 1 AND 744 THEN
		RAISE EXCEPTION 'hours must be between 1 and 744'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The request asked for %s hours.', coalesce(hours::text, 'null'));
	END IF;
	cache_key := format('aerovista:activity-summary:%sh', hours);

	-- the fast path: a fresh cached answer needs no rows
	result := datacore.summary_cached(cache_key);
	-- 10 per minute per caller, cached answers included; while Redis is
	-- unreachable the call is let through, as the chain still answers then
	PERFORM datacore.rate_limit_check('aerovista:summary:' || app.caller(), 10,
									  fail_open => true);
	IF result IS NOT NULL THEN
		RETURN result;
	END IF;

	SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') INTO counts
		FROM public.get_recent_activity(hours) a;
	-- one object per summary: named by its hours, so that summaries of other
	-- hours, or Pattern 2's summary-<timestamp>.json, made in the same second
	-- never overwrite it
	RETURN datacore.summarize(counts, 'Summarize these events:', cache_key,
							  cache_ttl => interval '300 seconds', bucket => 'summaries',
							  object_key => format('activity-%sh-%s.json', hours,
												   to_char(clock_timestamp() AT TIME ZONE 'UTC',
														   'YYYYMMDD"T"HH24MISS"Z"')));
END
$$;
ALTER FUNCTION public.get_recent_activity_summary(int) OWNER TO aerovista_owner;

-- Pattern 2, for pg_cron (hourly):
--   SELECT cron.schedule_in_database('aerovista-summary', '0 * * * *',
--       $$SELECT public.summarize_recent_logs()$$, 'aerovista');
-- The 100 latest rows -> "Summarize these activity logs:\n<rows as JSON>"
-- -> Ollama -> <bucket>/summary-<UTC timestamp>.json.  Each run writes a
-- new document, so it talks to the model and S3 directly rather than
-- through summarize's cache; a run with the AI node down fails and shows
-- in cron.job_run_details, and the next run is the retry.  With S3 down the
-- generated document is not lost: it is stored by a job (s3_put_async).
CREATE FUNCTION public.summarize_recent_logs(bucket text DEFAULT 'summaries')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	logs		jsonb;
	n			integer;
	reply		jsonb;
	doc			jsonb;
	object_key	text;
	job			bigint;
BEGIN
	SELECT count(*), coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.created_at DESC, l.id DESC), '[]')
		INTO n, logs
		FROM (SELECT * FROM public.activity_logs ORDER BY created_at DESC LIMIT 100) l;
	reply := datacore.ollama_generate_json(E'Summarize these activity logs:\n' || logs::text);
	object_key := format('summary-%s.json',
						 to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"'));
	doc := jsonb_build_object(
		'summary', reply ->> 'response',
		'model', reply ->> 'model',
		'generated_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'rows', n);
	BEGIN
		PERFORM datacore.s3_put(bucket, object_key, doc, 'application/json');
	EXCEPTION WHEN connection_exception THEN
		job := datacore.s3_put_async(bucket, object_key, doc, 'application/json');
	END;
	RETURN doc || jsonb_build_object('object', format('s3://%s/%s', bucket, object_key),
									 'store_job', job);
END
$$;
ALTER FUNCTION public.summarize_recent_logs(text) OWNER TO aerovista_owner;

-- PostgREST's db-pre-request: a request gets in only with the service's
-- credentials, either
--   the header X-Service-Auth: <token>, whose SHA-256 is kept in
--   app.service_auth (web_anon cannot read it), or
--   a JWT (checked by PostgREST against jwt-secret) whose claims carry
--   "service": app.service_auth.service_claim.
-- No credentials, or a token that does not match: PT401 (HTTP 401).  A valid
-- JWT without the service claim: PT403 (HTTP 403).
-- Set the token without writing it into SQL (or the server log):
--   psql -v h="$(printf %s "$TOKEN" | sha256sum | cut -c1-64)" \
--        -c "UPDATE app.service_auth SET token_sha256 = decode(:'h', 'hex')"
CREATE TABLE app.service_auth (
	token_sha256	bytea CHECK (length(token_sha256) = 32),	-- NULL: no header token accepted
	service_claim	text NOT NULL DEFAULT 'aerovista-gateway',
	singleton		boolean PRIMARY KEY DEFAULT true CHECK (singleton)
);
INSERT INTO app.service_auth DEFAULT VALUES;
ALTER TABLE app.service_auth OWNER TO aerovista_owner;

CREATE FUNCTION app.authenticate_service() RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	claims	jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}');
	headers	jsonb := coalesce(nullif(current_setting('request.headers', true), '')::jsonb, '{}');
	token	text := headers ->> 'x-service-auth';
	auth	app.service_auth;
BEGIN
	SELECT * INTO auth FROM app.service_auth;
	IF token IS NOT NULL THEN
		IF auth.token_sha256 IS NOT NULL
		   AND sha256(convert_to(token, 'UTF8')) = auth.token_sha256 THEN
			RETURN;
		END IF;
		RAISE SQLSTATE 'PT401' USING MESSAGE = 'invalid service credentials',
			DETAIL = 'The X-Service-Auth header does not hold the service token.';
	END IF;
	IF claims ->> 'service' = auth.service_claim THEN
		RETURN;
	END IF;
	-- PostgREST's claims of an anonymous request hold only the role
	IF claims - 'role' = '{}'::jsonb THEN
		RAISE SQLSTATE 'PT401' USING MESSAGE = 'service credentials required',
			DETAIL = 'The request carries neither an X-Service-Auth header nor a JWT.',
			HINT = 'Call the API through the gateway.';
	END IF;
	RAISE SQLSTATE 'PT403' USING MESSAGE = 'not the service',
		DETAIL = 'The JWT does not carry the service claim.',
		HINT = 'Call the API through the gateway.';
END
$$;
ALTER FUNCTION app.authenticate_service() OWNER TO aerovista_owner;

-- What web_anon may do, and nothing more.
REVOKE ALL ON FUNCTION public.get_recent_activity(int), public.get_recent_activity_summary(int),
		public.summarize_recent_logs(text), app.caller(), app.authenticate_service()
	FROM PUBLIC;
GRANT USAGE ON SCHEMA public, app TO web_anon;
GRANT EXECUTE ON FUNCTION public.get_recent_activity(int), public.get_recent_activity_summary(int),
		app.authenticate_service()
	TO web_anon;
GRANT SELECT ON public.activity_summary TO web_anon;
