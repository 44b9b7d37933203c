-- datacore 0.1.0 -> 0.2.0
--
-- Each change to sql/install/ since 0.1.0 appears here as well, in the same
-- order; test/t/upgrade.sh checks that an updated 0.1.0 installation matches a
-- fresh 0.2.0 one object by object.

\echo Use "ALTER EXTENSION datacore UPDATE TO '0.2.0'" to load this file. \quit

-- RAG: a pipeline belongs to exactly one role, the one that created it
--
-- Existing pipelines keep the role recorded in their owner column (the role
-- that created them, unless a member of it reassigned the row under 0.1.0's
-- policy).  From now on only that role changes, syncs, schedules, resets or
-- drops a pipeline; members of it may still read the row and search.
ALTER TABLE rag_pipelines ALTER COLUMN owner SET DEFAULT pg_catalog.quote_ident(current_user)::regrole;
COMMENT ON COLUMN rag_pipelines.owner IS 'the role that created the pipeline; only it changes, syncs or schedules it';
DROP POLICY rag_pipelines_owner ON rag_pipelines;
CREATE POLICY rag_pipelines_read ON rag_pipelines FOR SELECT
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY rag_pipelines_insert ON rag_pipelines FOR INSERT
	WITH CHECK (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE POLICY rag_pipelines_update ON rag_pipelines FOR UPDATE
	USING (owner = pg_catalog.quote_ident(current_user)::regrole)
	WITH CHECK (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE POLICY rag_pipelines_delete ON rag_pipelines FOR DELETE
	USING (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE FUNCTION rag_pipelines_guard() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me regrole := quote_ident(current_user)::regrole;
BEGIN
	IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = me) THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	IF TG_OP <> 'INSERT' AND OLD.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', OLD.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The pipeline belongs to role %s; only that role may change it.', OLD.owner);
	END IF;
	IF TG_OP <> 'DELETE' AND NEW.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'rag pipeline "%" must belong to the role that writes it', NEW.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The owner would be %s, the current role is %s.', NEW.owner, me),
				  HINT = 'Only a superuser gives a pipeline to another role.';
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
REVOKE EXECUTE ON FUNCTION rag_pipelines_guard() FROM PUBLIC;
COMMENT ON FUNCTION rag_pipelines_guard() IS 'refuse writes to RAG pipelines of other roles, also for BYPASSRLS roles (internal)';
CREATE TRIGGER rag_pipelines_guard BEFORE INSERT OR UPDATE OR DELETE ON rag_pipelines
	FOR EACH ROW EXECUTE FUNCTION rag_pipelines_guard();

CREATE OR REPLACE FUNCTION rag_get(pipeline text, for_update boolean DEFAULT false)
	RETURNS rag_pipelines
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	me regrole := quote_ident(current_user)::regrole;
BEGIN
	IF pipeline IS NULL THEN
		RAISE EXCEPTION 'rag pipeline name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline;
	-- read again under the lock: only a superuser changes an owner, but it
	-- may have done so meanwhile
	IF FOUND AND for_update AND p.owner = me THEN
		SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rag pipeline "%" does not exist', pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'List the pipelines with: SELECT name FROM datacore.rag_pipelines;';
	END IF;
	IF for_update AND p.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The pipeline belongs to role %s: only that role changes, syncs or schedules it, with its own rights.',
								  p.owner),
				  HINT = CASE WHEN NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = p.owner)
							  THEN 'Its owner was dropped: a superuser can set a new owner in datacore.rag_pipelines, or delete the row.'
							  WHEN pg_has_role(p.owner, 'MEMBER')
							  THEN format('To act as its owner: SET ROLE %s;', p.owner)
							  ELSE 'Only its owner, or a superuser acting as it with SET ROLE, can.' END;
	END IF;
	RETURN p;
END $$;
COMMENT ON FUNCTION rag_get(text, boolean) IS 'the catalog row of a RAG pipeline, locked and owned by the current role when for_update (internal)';

CREATE OR REPLACE FUNCTION rag_schedule(name text, schedule text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_schedule.name, true);
	job text := datacore.rag_job_name(p.name);
	command text := format('SELECT datacore.rag_sync(%L)', p.name);
	jobid bigint;
BEGIN
	IF rag_schedule.schedule IS NULL OR rag_schedule.schedule = '' THEN
		RAISE EXCEPTION 'schedule must be a non-empty cron expression'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example ''*/5 * * * *'' (every five minutes).';
	END IF;
	PERFORM datacore.rag_cron_check(
		format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
			   job, rag_schedule.schedule, command, current_database(), current_user));
	-- called through EXECUTE: datacore does not depend on pg_cron.  The job
	-- runs as current_user, who is the owner (rag_get checked it).
	EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid USING job, rag_schedule.schedule, command;
	RETURN jobid;
END $$;
-- S3: s3_create_bucket returns whether it created the bucket (false: it existed and is yours)
DROP FUNCTION s3_create_bucket(text, name);
CREATE FUNCTION s3_create_bucket(bucket text, server name DEFAULT 'minio') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_s3_create_bucket' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_create_bucket(text, name) IS 'create a bucket; false when it exists already and is yours';
-- Redis: redis_transaction (MULTI ... EXEC in one round trip)
CREATE FUNCTION redis_transaction(commands text[][], server name DEFAULT 'redis') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_redis_transaction' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_transaction(text[], name) IS 'MULTI, one command per row of commands, EXEC in one round trip; the replies as a jsonb array';
-- breaker: half-open state, the breakers view
DROP FUNCTION breaker_status();
CREATE FUNCTION breaker_status(OUT server text, OUT state text, OUT failures int,
		OUT opened_at timestamptz, OUT next_probe_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'datacore_breaker_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION breaker_status() IS 'circuit breakers of this database''s servers with failures on record: state (closed, open, half-open), consecutive failures, when it last opened, when the next probe call may go';

-- The breakers as a view, for monitoring (no secrets: names and counters).
CREATE VIEW breakers AS
	SELECT server, state, failures, opened_at, next_probe_at FROM breaker_status();
COMMENT ON VIEW breakers IS 'circuit breakers of this database''s servers with failures on record';
GRANT SELECT ON breakers TO PUBLIC;

-- rate limits (sql/install/45_ratelimit.sql)
CREATE FUNCTION rate_limit(key text, per_minute int, server name DEFAULT 'redis',
		window_size interval DEFAULT '1 minute', fail_open boolean DEFAULT false)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_rate_limit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rate_limit(text, int, name, interval, boolean) IS 'whether this call is within per_minute calls in any window_size for key (and count it); while Redis is unreachable: fail_open';

CREATE FUNCTION rate_limit_check(key text, per_minute int, server name DEFAULT 'redis',
		window_size interval DEFAULT '1 minute', fail_open boolean DEFAULT false)
	RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_rate_limit_check' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rate_limit_check(text, int, name, interval, boolean) IS 'like rate_limit, but a refused call raises the PostgREST error for HTTP 429 with Retry-After (503 while Redis is unreachable)';
-- 0.2.0: metrics (sql/install/70_metrics.sql)
--
-- Readers: members of pg_monitor (and superusers).  The counters name servers
-- and operations of every database, never option values or secrets; jobs are
-- counted by state only.  reset_metrics() is for superusers unless granted.

CREATE FUNCTION metrics_entries(
		OUT database text, OUT server text, OUT service text, OUT operation text,
		OUT requests bigint, OUT retries bigint, OUT bytes_sent bigint, OUT bytes_received bigint,
		OUT error_classes text[], OUT errors bigint[],
		OUT latency_le float8[], OUT latency_buckets bigint[],
		OUT latency_sum float8, OUT latency_count bigint,
		OUT prompt_tokens bigint, OUT eval_tokens bigint,
		OUT cache_hits bigint, OUT cache_misses bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'datacore_metrics_entries' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION metrics_entries()
	IS 'raw request counters per (database, server, operation) from shared memory; read datacore.metrics instead';

CREATE FUNCTION metrics_info(OUT entries int, OUT max_entries int, OUT overflow bigint,
							 OUT reset_at timestamptz, OUT shared boolean)
	AS 'MODULE_PATHNAME', 'datacore_metrics_info' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION metrics_info()
	IS 'keys in the metrics table, its capacity (datacore.metrics_max_entries), recordings dropped because it was full, last reset, whether it is shared by all backends';

CREATE FUNCTION reset_metrics() RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_reset_metrics' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reset_metrics() IS 'empty the metrics table, for every database';

-- Breaker state of this database's servers that have a breaker on record or
-- metrics: from the view datacore.breakers where the installed version has
-- it, else from breaker_status().
CREATE FUNCTION metrics_breakers(OUT server text, OUT state text)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN QUERY
		SELECT DISTINCT ON (x.server) x.server, coalesce(x.state, 'closed')
		  FROM (SELECT e.server, NULL::text AS state FROM datacore.metrics_entries() e
				 WHERE e.database = current_database()
				UNION ALL
				SELECT * FROM datacore.metrics_breaker_records()) x
		 ORDER BY x.server, x.state NULLS LAST;
END $$;
COMMENT ON FUNCTION metrics_breakers() IS 'breaker state (closed, open, half_open) of this database''s servers with metrics or a breaker on record';

CREATE FUNCTION metrics_breaker_records(OUT server text, OUT state text)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF to_regclass('datacore.breakers') IS NOT NULL THEN
		RETURN QUERY EXECUTE
			'SELECT b.server::text, replace(replace(lower(b.state::text), ''-'', ''_''), '' '', ''_'')
			   FROM datacore.breakers b';
	ELSE
		RETURN QUERY
			SELECT b.server, CASE WHEN b.open_until > now() THEN 'open' ELSE 'closed' END
			  FROM datacore.breaker_status() b;
	END IF;
END $$;
COMMENT ON FUNCTION metrics_breaker_records() IS 'breaker state of this database''s servers with a breaker on record';

-- Jobs of this database by state, once the table datacore.jobs exists; every
-- state is listed, with 0 when there are none.  SECURITY DEFINER: a monitor
-- sees counts, not the jobs (their owners' rows).
CREATE FUNCTION metrics_jobs(OUT state text, OUT jobs bigint)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF to_regclass('datacore.jobs') IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE
		'SELECT s.state, coalesce(c.n, 0)::bigint
		   FROM unnest(ARRAY[''queued'', ''running'', ''succeeded'', ''failed'', ''dead'']) WITH ORDINALITY s(state, ord)
		   LEFT JOIN (SELECT j.state::text AS state, count(*) AS n FROM datacore.jobs j GROUP BY 1) c
		     ON c.state = s.state
		  ORDER BY s.ord';
END $$;
COMMENT ON FUNCTION metrics_jobs() IS 'jobs of this database per state (no rows before datacore.jobs exists)';

CREATE VIEW metrics AS
	SELECT e.database, e.server, e.service, e.operation,
		   e.requests,
		   (SELECT coalesce(sum(n), 0)::bigint FROM unnest(e.errors) n) AS errors,
		   (SELECT coalesce(jsonb_object_agg(c, n), '{}')
			  FROM unnest(e.error_classes, e.errors) x(c, n) WHERE n > 0) AS errors_by_class,
		   e.retries, e.bytes_sent, e.bytes_received,
		   e.latency_le, e.latency_buckets, e.latency_sum, e.latency_count,
		   e.prompt_tokens, e.eval_tokens, e.cache_hits, e.cache_misses,
		   CASE WHEN e.database = current_database()
				THEN coalesce(b.state, 'closed') END AS breaker_state
	  FROM metrics_entries() e
	  LEFT JOIN metrics_breakers() b
		ON e.database = current_database() AND b.server = e.server;
COMMENT ON VIEW metrics IS 'requests, errors per SQLSTATE class, retries, bytes, latency histogram (cumulative buckets per upper bound in seconds), Ollama tokens and cache lookups per (database, server, operation); breaker state for this database';

-- A label value in the Prometheus text format: backslash, double quote and
-- line feed escaped.
CREATE FUNCTION metrics_label(value text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT replace(replace(replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;
COMMENT ON FUNCTION metrics_label(text) IS 'a value escaped for a Prometheus label';

CREATE FUNCTION metrics_prometheus() RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	-- one snapshot of the counters for every family below
	rows datacore.metrics[] := ARRAY(SELECT m FROM datacore.metrics m);
	out text := '';
	samples text;
	r record;
BEGIN
	FOR r IN
		SELECT * FROM (VALUES
			('datacore_requests_total', 'Requests sent (each attempt counts), by database, server, service and operation.', 'requests', false),
			('datacore_retries_total', 'Requests sent again after a transient failure.', 'retries', false),
			('datacore_sent_bytes_total', 'Bytes sent: request headers and bodies.', 'bytes_sent', false),
			('datacore_received_bytes_total', 'Bytes received: response headers and bodies.', 'bytes_received', false),
			('datacore_ollama_prompt_tokens_total', 'Prompt tokens Ollama reported evaluating (generate, chat).', 'prompt_tokens', true),
			('datacore_ollama_eval_tokens_total', 'Tokens Ollama reported generating (generate, chat).', 'eval_tokens', true),
			('datacore_cache_hits_total', 'Response-cache lookups that found an answer.', 'cache_hits', false),
			('datacore_cache_misses_total', 'Response-cache lookups that found none.', 'cache_misses', false)
		) f(name, help, col, ollama_only)
	LOOP
		out := out || format(E'# HELP %s %s\n# TYPE %s counter\n', r.name, r.help, r.name);
		EXECUTE format(
			$q$SELECT coalesce(string_agg(format(E'%%s{database="%%s",server="%%s",service="%%s",operation="%%s"} %%s\n',
						$1, datacore.metrics_label(database), datacore.metrics_label(server),
						datacore.metrics_label(service), datacore.metrics_label(operation), %I),
					'' ORDER BY database, server, operation), '')
			     FROM unnest($2) WHERE NOT $3 OR service = 'ollama'$q$, r.col)
		  INTO samples USING r.name, rows, r.ollama_only;
		out := out || samples;
	END LOOP;

	out := out || E'# HELP datacore_errors_total Requests that failed, by the SQLSTATE class of the error (other: any class not listed).\n'
			   || E'# TYPE datacore_errors_total counter\n'
			   || coalesce((
		SELECT string_agg(format(E'datacore_errors_total{database="%s",server="%s",service="%s",operation="%s",class="%s"} %s\n',
								 datacore.metrics_label(m.database), datacore.metrics_label(m.server),
								 datacore.metrics_label(m.service), datacore.metrics_label(m.operation),
								 c.key, c.value),
						  '' ORDER BY m.database, m.server, m.operation, c.key)
		  FROM unnest(rows) m, jsonb_each_text(m.errors_by_class) c), '');

	out := out || E'# HELP datacore_request_duration_seconds Time from sending a request to its complete answer.\n'
			   || E'# TYPE datacore_request_duration_seconds histogram\n'
			   || coalesce((
		SELECT string_agg(s, '' ORDER BY database, server, operation)
		  FROM (SELECT m.database, m.server, m.operation,
					   (SELECT string_agg(format(E'datacore_request_duration_seconds_bucket{%s,le="%s"} %s\n',
												 l.lbl, CASE WHEN b.le = 'Infinity' THEN '+Inf' ELSE b.le::text END, b.n),
										  '' ORDER BY b.ord)
						  FROM unnest(m.latency_le, m.latency_buckets) WITH ORDINALITY b(le, n, ord))
					   || format(E'datacore_request_duration_seconds_sum{%s} %s\n', l.lbl, m.latency_sum)
					   || format(E'datacore_request_duration_seconds_count{%s} %s\n', l.lbl, m.latency_count) AS s
				  FROM unnest(rows) m,
					   LATERAL (SELECT format('database="%s",server="%s",service="%s",operation="%s"',
											  datacore.metrics_label(m.database), datacore.metrics_label(m.server),
											  datacore.metrics_label(m.service), datacore.metrics_label(m.operation)) AS lbl) l) h), '');

	out := out || E'# HELP datacore_breaker_open Whether calls to the server fail fast (1: breaker open or probing, 0: closed).\n'
			   || E'# TYPE datacore_breaker_open gauge\n'
			   || coalesce((
		SELECT string_agg(format(E'datacore_breaker_open{database="%s",server="%s"} %s\n',
								 datacore.metrics_label(current_database()), datacore.metrics_label(s.server),
								 CASE WHEN s.state IN ('open', 'half_open') THEN 1 ELSE 0 END),
						  '' ORDER BY s.server)
		  FROM datacore.metrics_breakers() s), '');

	IF to_regclass('datacore.jobs') IS NOT NULL THEN
		out := out || E'# HELP datacore_jobs_by_state Jobs in datacore.jobs of this database, by state.\n'
				   || E'# TYPE datacore_jobs_by_state gauge\n'
				   || coalesce((
			SELECT string_agg(format(E'datacore_jobs_by_state{database="%s",state="%s"} %s\n',
									 datacore.metrics_label(current_database()), datacore.metrics_label(j.state), j.jobs),
							  '')
			  FROM datacore.metrics_jobs() j), '');
	END IF;

	SELECT out || E'# HELP datacore_metrics_entries Keys held in the metrics table.\n'
			   || E'# TYPE datacore_metrics_entries gauge\n'
			   || format(E'datacore_metrics_entries %s\n', i.entries)
			   || E'# HELP datacore_metrics_max_entries Capacity of the metrics table (datacore.metrics_max_entries).\n'
			   || E'# TYPE datacore_metrics_max_entries gauge\n'
			   || format(E'datacore_metrics_max_entries %s\n', i.max_entries)
			   || E'# HELP datacore_metrics_overflow_total Recordings dropped because the metrics table was full.\n'
			   || E'# TYPE datacore_metrics_overflow_total counter\n'
			   || format(E'datacore_metrics_overflow_total %s\n', i.overflow)
	  INTO out
	  FROM datacore.metrics_info() i;
	RETURN out;
END $$;
COMMENT ON FUNCTION metrics_prometheus() IS 'datacore.metrics in the Prometheus text exposition format (version 0.0.4)';

REVOKE EXECUTE ON FUNCTION metrics_entries(), metrics_info(), reset_metrics(), metrics_breakers(),
	metrics_breaker_records(), metrics_jobs(), metrics_prometheus() FROM PUBLIC;
REVOKE SELECT ON metrics FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics_entries(), metrics_info(), metrics_breakers(),
	metrics_breaker_records(), metrics_jobs(), metrics_prometheus() TO pg_monitor;
GRANT SELECT ON metrics TO pg_monitor;
-- jobs: the durable queue, enqueue and the _async calls (sql/install/60_jobs.sql)
-- Durable jobs (src/jobs.c, src/worker.c): a queue table, enqueue and the
-- _async forms of the calls with side effects, and the functions to run,
-- wait for and retry jobs.  A job runs after its transaction commits, as
-- the role that enqueued it; see docs/jobs.md.
CREATE TABLE jobs (
	id bigserial PRIMARY KEY,
	kind text NOT NULL CHECK (kind IN ('ollama_generate', 'ollama_embed', 's3_put',
									   'qdrant_upsert', 'redis_set')),
	server name NOT NULL,
	args jsonb NOT NULL CHECK (jsonb_typeof(args) = 'object'),
	state text NOT NULL DEFAULT 'queued'
		CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
	attempts integer NOT NULL DEFAULT 0,
	max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
	run_after timestamptz NOT NULL DEFAULT now(),
	created_at timestamptz NOT NULL DEFAULT now(),
	started_at timestamptz,
	finished_at timestamptz,
	result jsonb,
	last_error jsonb,
	owner regrole NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_after, id) WHERE state = 'queued';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
COMMENT ON TABLE jobs IS 'queued, running and finished jobs; each role sees its own';

-- Only the extension's functions write the queue (recording the caller as
-- owner); a role reads the jobs of the roles it has the privileges of.
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY jobs_owner ON jobs FOR SELECT USING (pg_has_role(owner, 'USAGE'));
REVOKE ALL ON jobs FROM PUBLIC;
GRANT SELECT ON jobs TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('jobs', '');
SELECT pg_catalog.pg_extension_config_dump('jobs_id_seq', '');

CREATE FUNCTION enqueue(kind text, args jsonb, server name, max_attempts integer DEFAULT 5,
						run_after timestamptz DEFAULT now()) RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_enqueue' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION enqueue(text, jsonb, name, integer, timestamptz)
	IS 'queue a job that runs after this transaction commits, as the current role; returns its id';

CREATE FUNCTION run_jobs(max integer DEFAULT 100) RETURNS integer
	AS 'MODULE_PATHNAME', 'datacore_run_jobs' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION run_jobs(integer) FROM PUBLIC;
COMMENT ON FUNCTION run_jobs(integer)
	IS 'run up to max due jobs in this transaction (each as its owner); for datacore.job_worker = off';

CREATE FUNCTION job_wait(id bigint, timeout interval DEFAULT '30 seconds') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_job_wait' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION job_wait(bigint, interval)
	IS 'the result of a job once it succeeded, its error once it failed, NULL if still pending after timeout';

CREATE FUNCTION retry_job(id bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_retry_job' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION retry_job(bigint) IS 'queue a failed or dead job again with its attempts reset';

-- The _async forms take the arguments of the synchronous calls and return
-- the job id; the synchronous function runs later, in the worker.
CREATE FUNCTION ollama_generate_async(prompt text, model text DEFAULT NULL,
		system text DEFAULT NULL, options jsonb DEFAULT NULL,
		format jsonb DEFAULT NULL, server name DEFAULT 'ollama') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('ollama_generate', jsonb_build_object('prompt', prompt,
		'model', model, 'system', system, 'options', options, 'format', format), server)$$;
COMMENT ON FUNCTION ollama_generate_async(text, text, text, jsonb, jsonb, name)
	IS 'ollama_generate as a job; the result is the generated text as a jsonb string';

CREATE FUNCTION ollama_embed_async(input text, model text DEFAULT NULL,
		server name DEFAULT 'ollama') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('ollama_embed', jsonb_build_object('input', input,
		'model', model), server)$$;
COMMENT ON FUNCTION ollama_embed_async(text, text, name)
	IS 'ollama_embed as a job; the result is the vector as a jsonb array';

CREATE FUNCTION s3_put_async(bucket text, key text, body bytea, content_type text DEFAULT NULL,
		server name DEFAULT 'minio') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('s3_put', jsonb_build_object('bucket', bucket, 'key', key,
		'body_base64', encode(body, 'base64'), 'content_type', content_type), server)$$;
CREATE FUNCTION s3_put_async(bucket text, key text, body text, content_type text DEFAULT NULL,
		server name DEFAULT 'minio') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('s3_put', jsonb_build_object('bucket', bucket, 'key', key,
		'body', body, 'content_type', content_type), server)$$;
CREATE FUNCTION s3_put_async(bucket text, key text, body jsonb, content_type text DEFAULT NULL,
		server name DEFAULT 'minio') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('s3_put', jsonb_build_object('bucket', bucket, 'key', key,
		'body_json', body, 'content_type', content_type), server)$$;
COMMENT ON FUNCTION s3_put_async(text, text, bytea, text, name)
	IS 's3_put as a job; the result is the ETag as a jsonb string';

CREATE FUNCTION qdrant_upsert_async(collection text, id text, vector real[],
		payload jsonb DEFAULT NULL, wait boolean DEFAULT true,
		server name DEFAULT 'qdrant') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('qdrant_upsert', jsonb_build_object('collection', collection,
		'id', id, 'vector', to_jsonb(vector), 'payload', payload, 'wait', wait), server)$$;
CREATE FUNCTION qdrant_upsert_async(collection text, id bigint, vector real[],
		payload jsonb DEFAULT NULL, wait boolean DEFAULT true,
		server name DEFAULT 'qdrant') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('qdrant_upsert', jsonb_build_object('collection', collection,
		'id', id, 'vector', to_jsonb(vector), 'payload', payload, 'wait', wait), server)$$;
CREATE FUNCTION qdrant_upsert_async(collection text, id uuid, vector real[],
		payload jsonb DEFAULT NULL, wait boolean DEFAULT true,
		server name DEFAULT 'qdrant') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('qdrant_upsert', jsonb_build_object('collection', collection,
		'id', id, 'vector', to_jsonb(vector), 'payload', payload, 'wait', wait), server)$$;
CREATE FUNCTION qdrant_upsert_async(collection text, points jsonb, wait boolean DEFAULT true,
		server name DEFAULT 'qdrant') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('qdrant_upsert', jsonb_build_object('collection', collection,
		'points', points, 'wait', wait), server)$$;
COMMENT ON FUNCTION qdrant_upsert_async(text, text, real[], jsonb, boolean, name)
	IS 'qdrant_upsert as a job; the result is the point id (or, for a batch, the count)';

CREATE FUNCTION redis_set_async(key text, value text, ttl interval DEFAULT NULL,
		only_if_absent boolean DEFAULT false, server name DEFAULT 'redis') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('redis_set', jsonb_build_object('key', key, 'value', value,
		'ttl', ttl, 'only_if_absent', only_if_absent), server)$$;
CREATE FUNCTION redis_set_async(key text, value bytea, ttl interval DEFAULT NULL,
		only_if_absent boolean DEFAULT false, server name DEFAULT 'redis') RETURNS bigint
	LANGUAGE sql VOLATILE
	AS $$SELECT datacore.enqueue('redis_set', jsonb_build_object('key', key,
		'value_base64', encode(value, 'base64'), 'ttl', ttl,
		'only_if_absent', only_if_absent), server)$$;
COMMENT ON FUNCTION redis_set_async(text, text, interval, boolean, name)
	IS 'redis_set as a job; the result is the boolean redis_set returns';

-- Ollama: generate and chat take cache_ttl (the model-response cache); a
-- parameter cannot be added in place, so the functions are created again
DROP FUNCTION ollama_generate(text, text, text, jsonb, jsonb, name);
DROP FUNCTION ollama_generate_json(text, text, text, jsonb, jsonb, name);
DROP FUNCTION ollama_chat(jsonb, text, jsonb, jsonb, jsonb, name);
CREATE FUNCTION ollama_generate(prompt text, model text DEFAULT NULL,
		system text DEFAULT NULL, options jsonb DEFAULT NULL,
		format jsonb DEFAULT NULL, server name DEFAULT 'ollama',
		cache_ttl interval DEFAULT NULL) RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_ollama_generate' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ollama_generate(text, text, text, jsonb, jsonb, name, interval)
	IS 'text generated by an Ollama model for a prompt (POST /api/generate)';
CREATE FUNCTION ollama_generate_json(prompt text, model text DEFAULT NULL,
		system text DEFAULT NULL, options jsonb DEFAULT NULL,
		format jsonb DEFAULT NULL, server name DEFAULT 'ollama',
		cache_ttl interval DEFAULT NULL) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_ollama_generate_json' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ollama_generate_json(text, text, text, jsonb, jsonb, name, interval)
	IS 'whole final /api/generate reply: response, done_reason, token counts, durations';
CREATE FUNCTION ollama_chat(messages jsonb, model text DEFAULT NULL,
		options jsonb DEFAULT NULL, format jsonb DEFAULT NULL,
		tools jsonb DEFAULT NULL, server name DEFAULT 'ollama',
		cache_ttl interval DEFAULT NULL) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_ollama_chat' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ollama_chat(jsonb, text, jsonb, jsonb, jsonb, name, interval)
	IS 'assistant message (with tool_calls) answering a chat history (POST /api/chat)';
