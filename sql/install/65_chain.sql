
-- The summary chain (docs/chains.md): rows -> prompt within a budget ->
-- Ollama -> the result document in S3 -> Redis with a TTL -> a last-good copy
-- here; on an AI failure the last good result, flagged stale, and one queued
-- refresh job per (owner, cache_key).  PL/pgSQL over the service functions;
-- src/chain.c only counts the cache outcomes in the metrics table.

-- The last good result of each (owner, cache_key): it survives Redis being
-- flushed or down and server restarts, and pg_dump carries it.  A role reads
-- and writes only its own rows (the functions also filter by owner, as a
-- superuser bypasses the policy).
CREATE TABLE summaries (
	owner regrole NOT NULL DEFAULT current_user::regrole,
	cache_key text NOT NULL,
	result jsonb NOT NULL,
	generated_at timestamptz NOT NULL,
	PRIMARY KEY (owner, cache_key)
);
COMMENT ON TABLE summaries IS 'last good result of datacore.summarize per (owner, cache_key); each role sees its own';
ALTER TABLE summaries ENABLE ROW LEVEL SECURITY;
CREATE POLICY summaries_owner ON summaries FOR ALL
	USING (owner = current_user::regrole) WITH CHECK (owner = current_user::regrole);
REVOKE ALL ON summaries FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON summaries TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('summaries', '');

-- At most one queued (or running) refresh per (owner, cache_key), however
-- many calls meet the failing model.
CREATE UNIQUE INDEX jobs_one_summary_refresh ON jobs (owner, (args->>'cache_key'))
	WHERE kind = 'summarize' AND state IN ('queued', 'running');

CREATE FUNCTION chain_metric(redis_server name, outcome text) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_chain_metric' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION chain_metric(name, text)
	IS 'count a summary cache hit, miss or failure (a SQLSTATE) under operation summarize (internal)';

-- Errors that mean the remote service failed, not the caller: connection
-- errors, timeouts, 429/5xx, an open breaker (class 08), bad or malformed
-- replies (class HV), oversized replies and text the database cannot hold.
CREATE FUNCTION summary_remote_failure(sqlstate text) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$SELECT left(sqlstate, 2) IN ('08', 'HV')
			 OR sqlstate IN ('54000', '22021', '22P05', '53200')$$;
COMMENT ON FUNCTION summary_remote_failure(text)
	IS 'whether a SQLSTATE is a failure of the remote service rather than of the call (internal)';

-- 25006 in a READ ONLY transaction unless datacore.remote_writes_in_read_only.
CREATE FUNCTION summary_check_writable(operation text) RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF current_setting('transaction_read_only') = 'on'
	   AND coalesce(current_setting('datacore.remote_writes_in_read_only', true), '') <> 'on' THEN
		RAISE EXCEPTION 'cannot execute % in a read-only transaction', operation
			USING ERRCODE = 'read_only_sql_transaction';
	END IF;
END $$;
COMMENT ON FUNCTION summary_check_writable(text)
	IS 'refuse a READ ONLY transaction as the calls with remote side effects do (internal)';

-- The prompt: instruction, a line feed, the rows as JSON; when that is over
-- max_prompt_chars, rows are left out from the end and a last line says how
-- many.  The instruction is never cut (22023 when it alone does not fit).
CREATE FUNCTION summary_prompt(rows jsonb, instruction text, max_prompt_chars integer,
		OUT prompt text, OUT included integer, OUT omitted integer)
	LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	whole text := rows::text;
	n integer;
	k integer;
	head integer := length(instruction) + 1;
BEGIN
	IF jsonb_typeof(rows) <> 'array' THEN
		IF head + length(whole) > max_prompt_chars THEN
			RAISE EXCEPTION 'rows do not fit in max_prompt_chars (%)', max_prompt_chars
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Only an array of rows can be shortened; the JSON text of this value is '
							   || length(whole) || ' characters long.';
		END IF;
		prompt := instruction || E'\n' || whole;
		included := 1;
		omitted := 0;
		RETURN;
	END IF;
	n := jsonb_array_length(rows);
	IF head + length(whole) <= max_prompt_chars THEN
		prompt := instruction || E'\n' || whole;
		included := n;
		omitted := 0;
		RETURN;
	END IF;
	-- jsonb prints an array as "[e1, e2]": k elements take sum(len + 2) characters
	SELECT coalesce(max(e.i), 0) INTO k
	  FROM (SELECT t.i, sum(length(t.v::text) + 2) OVER (ORDER BY t.i) AS upto
			  FROM jsonb_array_elements(rows) WITH ORDINALITY AS t(v, i)) e
	 WHERE head + e.upto + length(format(E'\n(%s more rows omitted)', n - e.i)) <= max_prompt_chars;
	IF k = 0 AND head + 2 + length(format(E'\n(%s more rows omitted)', n)) > max_prompt_chars THEN
		RAISE EXCEPTION 'instruction does not fit in max_prompt_chars (%)', max_prompt_chars
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The instruction is never shortened; it is ' || length(instruction)
						   || ' characters long.';
	END IF;
	SELECT instruction || E'\n[' || coalesce(string_agg(t.v::text, ', ' ORDER BY t.i), '') || ']'
		   || format(E'\n(%s more rows omitted)', n - k)
	  INTO prompt
	  FROM jsonb_array_elements(rows) WITH ORDINALITY AS t(v, i)
	 WHERE t.i <= k;
	included := k;
	omitted := n - k;
END $$;
COMMENT ON FUNCTION summary_prompt(jsonb, text, integer)
	IS 'the prompt summarize sends, with the rows it includes and leaves out (internal)';

CREATE FUNCTION chain_enqueue_detached(args jsonb, server name, run_after timestamptz)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_chain_enqueue_detached' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION chain_enqueue_detached(jsonb, name, timestamptz)
	IS 'queue a summary refresh from a background worker''s own transaction, which survives this one (internal)';

-- Queue the refresh of a cache key unless one is queued or running; returns
-- the job's id (NULL in a READ ONLY transaction, which cannot write the
-- queue).  detached: queued by a background worker and committed at once,
-- for a caller about to raise PT503, which rolls back its own transaction.
CREATE FUNCTION summary_enqueue_refresh(args jsonb, ollama_server name, run_after timestamptz,
		detached boolean DEFAULT false)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	id bigint;
BEGIN
	IF current_setting('transaction_read_only') = 'on' THEN
		RETURN NULL;
	END IF;
	SELECT j.id INTO id FROM datacore.jobs j
	 WHERE j.kind = 'summarize' AND j.owner = current_user::regrole
	   AND j.state IN ('queued', 'running')
	   AND j.args->>'cache_key' = summary_enqueue_refresh.args->>'cache_key';
	IF FOUND THEN
		RETURN id;
	END IF;
	IF detached THEN
		RETURN datacore.chain_enqueue_detached(args, ollama_server, run_after);
	END IF;
	BEGIN
		RETURN datacore.enqueue('summarize', args, ollama_server, 10, run_after);
	EXCEPTION WHEN unique_violation THEN
		-- another session queued it first
		SELECT j.id INTO id FROM datacore.jobs j
		 WHERE j.kind = 'summarize' AND j.owner = current_user::regrole
		   AND j.state IN ('queued', 'running')
		   AND j.args->>'cache_key' = summary_enqueue_refresh.args->>'cache_key';
		RETURN id;
	END;
END $$;
COMMENT ON FUNCTION summary_enqueue_refresh(jsonb, name, timestamptz, boolean)
	IS 'queue one refresh job per (owner, cache_key) (internal)';

-- From a model reply to the stored, cached result: the document goes to S3
-- (a failure queues an s3_put job and says "stored": false), to Redis with
-- the TTL (a failure is counted and warned about, not retried) and to the
-- last-good table.  Returns the document as cached.
CREATE FUNCTION summary_finish(reply jsonb, args jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	at timestamptz := clock_timestamp();
	bucket text := args->>'bucket';
	key text := coalesce(args->>'object_key',
						 'summary-' || to_char(at AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"') || '.json');
	s3_server name := args->>'s3_server';
	redis_server name := args->>'redis_server';
	doc jsonb;
	stored boolean := false;
	writable boolean := current_setting('transaction_read_only') = 'off';
BEGIN
	doc := jsonb_build_object(
		'summary', reply->>'response',
		'model', reply->>'model',
		'generated_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'rows', (args->>'rows')::integer,
		'rows_omitted', (args->>'rows_omitted')::integer,
		'prompt_chars', length(args->>'prompt'),
		'cache_key', args->>'cache_key',
		'object', CASE WHEN bucket IS NOT NULL THEN format('s3://%s/%s', bucket, key) END);
	IF bucket IS NOT NULL THEN
		BEGIN
			PERFORM datacore.s3_put(bucket, key, doc, 'application/json', s3_server);
			stored := true;
		EXCEPTION WHEN OTHERS THEN
			IF writable THEN
				PERFORM datacore.s3_put_async(bucket, key, doc, 'application/json', s3_server);
			END IF;
			RAISE WARNING 'summary for cache key "%" not stored in S3 yet', args->>'cache_key'
				USING DETAIL = format('%s: %s', SQLSTATE, SQLERRM),
					  HINT = CASE WHEN writable THEN 'An s3_put job stores it later.'
							 ELSE 'A READ ONLY transaction cannot queue the job that would store it later.' END;
		END;
	END IF;
	doc := doc || jsonb_build_object('stored', stored);
	IF NOT coalesce((args->>'redis_down')::boolean, false) THEN
		BEGIN
			PERFORM datacore.redis_set('datacore:summary:' || current_user || ':' || (args->>'cache_key'),
									   doc::text, (args->>'cache_ttl')::interval, false, redis_server);
		EXCEPTION WHEN OTHERS THEN
			IF NOT datacore.summary_remote_failure(SQLSTATE) THEN
				RAISE;
			END IF;
			PERFORM datacore.chain_metric(redis_server, SQLSTATE);
			RAISE WARNING 'summary for cache key "%" not cached: redis server "%" failed',
				args->>'cache_key', redis_server
				USING DETAIL = format('%s: %s', SQLSTATE, SQLERRM);
		END;
	END IF;
	IF writable THEN
		INSERT INTO datacore.summaries AS s (owner, cache_key, result, generated_at)
			VALUES (current_user::regrole, args->>'cache_key', doc, at)
			ON CONFLICT (owner, cache_key) DO UPDATE
			SET result = excluded.result, generated_at = excluded.generated_at;
	END IF;
	RETURN doc;
END $$;
COMMENT ON FUNCTION summary_finish(jsonb, jsonb)
	IS 'store, cache and keep the document of a model reply (internal)';

-- The statement of a 'summarize' job: the model again, then store and cache.
-- A failure of the model is raised as 08006 so that the job is retried.  A
-- result generated after the failure that queued the job (a later call
-- found the model back) is newer than this job's rows: it is kept, not
-- overwritten, and the job ends without asking the model.
CREATE FUNCTION summarize_refresh(args jsonb, server name) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	reply jsonb;
	newer jsonb;
BEGIN
	SELECT s.result INTO newer FROM datacore.summaries s
	 WHERE s.owner = current_user::regrole AND s.cache_key = args->>'cache_key'
	   AND s.generated_at > (args->>'failed_at')::timestamptz;
	IF FOUND THEN
		RETURN newer || '{"cached": true, "stale": false, "superseded": true}';
	END IF;
	BEGIN
		reply := datacore.ollama_generate_json(args->>'prompt', args->>'model', NULL,
											   nullif(args->'options', 'null'), NULL, server);
	EXCEPTION WHEN OTHERS THEN
		IF NOT datacore.summary_remote_failure(SQLSTATE) THEN
			RAISE;
		END IF;
		RAISE EXCEPTION 'refresh of summary "%" failed: ollama server "%" is unavailable',
				args->>'cache_key', server
			USING ERRCODE = 'connection_failure', DETAIL = format('%s: %s', SQLSTATE, SQLERRM);
	END;
	RETURN datacore.summary_finish(reply, args - 'redis_down') || '{"cached": false, "stale": false}';
END $$;
COMMENT ON FUNCTION summarize_refresh(jsonb, name)
	IS 'regenerate, store and cache a summary: the statement of a summarize job (internal)';

CREATE FUNCTION summarize(rows jsonb, instruction text, cache_key text,
		cache_ttl interval DEFAULT '5 minutes', bucket text DEFAULT NULL,
		object_key text DEFAULT NULL, model text DEFAULT NULL,
		max_prompt_chars integer DEFAULT 16000, options jsonb DEFAULT NULL,
		ollama_server name DEFAULT 'ollama', s3_server name DEFAULT 'minio',
		redis_server name DEFAULT 'redis')
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	rkey text;
	cached text;
	redis_down boolean := false;
	p record;
	args jsonb;
	reply jsonb;
	code text;
	msg text;
	job bigint;
	last jsonb;
	retry integer;
BEGIN
	IF rows IS NULL OR instruction IS NULL OR cache_key IS NULL THEN
		RAISE EXCEPTION 'rows, instruction and cache_key of summarize must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF ollama_server IS NULL OR s3_server IS NULL OR redis_server IS NULL THEN
		RAISE EXCEPTION 'server names of summarize must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF cache_key = '' THEN
		RAISE EXCEPTION 'cache_key of summarize must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cache_ttl IS NULL OR cache_ttl <= interval '0' THEN
		RAISE EXCEPTION 'cache_ttl of summarize must be positive'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_prompt_chars IS NULL OR max_prompt_chars < 1 THEN
		RAISE EXCEPTION 'max_prompt_chars of summarize must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF object_key IS NOT NULL AND bucket IS NULL THEN
		RAISE EXCEPTION 'object_key of summarize needs a bucket'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM datacore.summary_check_writable('summarize()');

	-- 1. the cache; an unreachable Redis leaves the chain answering uncached
	rkey := 'datacore:summary:' || current_user || ':' || cache_key;
	BEGIN
		cached := datacore.redis_get(rkey, redis_server);
	EXCEPTION WHEN OTHERS THEN
		IF NOT datacore.summary_remote_failure(SQLSTATE) THEN
			RAISE;
		END IF;
		redis_down := true;
		PERFORM datacore.chain_metric(redis_server, SQLSTATE);
		RAISE WARNING 'summary cache unavailable: redis server "%" failed', redis_server
			USING DETAIL = format('%s: %s', SQLSTATE, SQLERRM),
				  HINT = 'The summary is computed without the cache.';
	END;
	IF cached IS NOT NULL THEN
		PERFORM datacore.chain_metric(redis_server, 'hit');
		RETURN cached::jsonb || '{"cached": true, "stale": false}';
	END IF;
	IF NOT redis_down THEN
		PERFORM datacore.chain_metric(redis_server, 'miss');
	END IF;

	-- the caller's own errors surface before the model is asked
	IF bucket IS NOT NULL THEN
		IF NOT has_server_privilege(s3_server, 'USAGE') THEN
			RAISE EXCEPTION 'permission denied for foreign server %', s3_server
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END IF;

	-- 2. the prompt, 3. the model
	SELECT * INTO p FROM datacore.summary_prompt(rows, instruction, max_prompt_chars);
	args := jsonb_build_object('cache_key', cache_key, 'prompt', p.prompt, 'rows', p.included,
							   'rows_omitted', p.omitted, 'model', model, 'options', options,
							   'cache_ttl', cache_ttl, 'bucket', bucket, 'object_key', object_key,
							   's3_server', s3_server, 'redis_server', redis_server,
							   'failed_at', clock_timestamp());
	BEGIN
		reply := datacore.ollama_generate_json(p.prompt, model, NULL, options, NULL, ollama_server);
	EXCEPTION WHEN OTHERS THEN
		IF NOT datacore.summary_remote_failure(SQLSTATE) THEN
			RAISE;
		END IF;
		code := SQLSTATE;
		msg := SQLERRM;
	END;

	-- 4. S3, 5. Redis, the last-good copy
	IF code IS NULL THEN
		RETURN datacore.summary_finish(reply, args || jsonb_build_object('redis_down', redis_down))
			   || '{"cached": false, "stale": false}';
	END IF;

	-- the model failed: the last good result, and one refresh for later
	retry := coalesce((SELECT greatest(1, ceil(extract(epoch FROM b.next_probe_at - clock_timestamp())))::integer
						 FROM datacore.breakers b
						WHERE b.server = ollama_server AND b.state = 'open'), 30);
	SELECT s.result INTO last FROM datacore.summaries s
	 WHERE s.owner = current_user::regrole AND s.cache_key = summarize.cache_key;
	job := datacore.summary_enqueue_refresh(args, ollama_server,
											clock_timestamp() + make_interval(secs => retry),
											detached => last IS NULL);
	IF last IS NULL THEN
		RAISE EXCEPTION 'AI service unavailable' USING
			ERRCODE = 'PT503',
			DETAIL = format('No result is stored for cache key "%s", and ollama server "%s" failed with %s: %s.',
							cache_key, ollama_server, code, msg)
					 || CASE WHEN job IS NOT NULL THEN format(' A refresh is queued (job %s).', job)
							 ELSE ' No refresh could be queued.' END,
			HINT = format('Retry after %s seconds.', retry);
	END IF;
	RETURN last || jsonb_build_object(
		'cached', true, 'stale', true,
		'message', 'AI service unavailable, showing cached result',
		'stale_reason', format('%s: %s', code, msg),
		'retry_after', retry, 'refresh_job', job);
END $$;
COMMENT ON FUNCTION summarize(jsonb, text, text, interval, text, text, text, integer, jsonb, name, name, name)
	IS 'summarize rows with a model within a prompt budget, store the result in S3, cache it in Redis; on an AI failure the last good result flagged stale';

CREATE FUNCTION summary_cached(cache_key text, redis_server name DEFAULT 'redis')
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	cached text;
BEGIN
	IF cache_key IS NULL OR redis_server IS NULL THEN
		RAISE EXCEPTION 'cache_key and redis_server of summary_cached must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM datacore.summary_check_writable('summary_cached()');
	BEGIN
		cached := datacore.redis_get('datacore:summary:' || current_user || ':' || cache_key,
									 redis_server);
	EXCEPTION WHEN OTHERS THEN
		IF NOT datacore.summary_remote_failure(SQLSTATE) THEN
			RAISE;
		END IF;
		PERFORM datacore.chain_metric(redis_server, SQLSTATE);
		RETURN NULL;
	END;
	PERFORM datacore.chain_metric(redis_server, CASE WHEN cached IS NULL THEN 'miss' ELSE 'hit' END);
	RETURN cached::jsonb || '{"cached": true, "stale": false}';
END $$;
COMMENT ON FUNCTION summary_cached(text, name)
	IS 'the fresh cached result of summarize for a cache key, or NULL';
