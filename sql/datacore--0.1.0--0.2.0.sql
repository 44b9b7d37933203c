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
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT b.server::text, replace(replace(lower(b.state::text), '-', '_'), ' ', '_')
	  FROM datacore.breakers b
$$;
COMMENT ON FUNCTION metrics_breaker_records() IS 'breaker state of this database''s servers with a breaker on record';

-- Jobs of this database by state, once the table datacore.jobs exists; every
-- state is listed, with 0 when there are none.  SECURITY DEFINER: a monitor
-- sees counts, not the jobs (their owners' rows).
CREATE FUNCTION metrics_jobs(OUT state text, OUT jobs bigint)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN QUERY
		SELECT s.state, coalesce(c.n, 0)::bigint
		  FROM unnest(ARRAY['queued', 'running', 'succeeded', 'failed', 'dead']) WITH ORDINALITY s(state, ord)
		  LEFT JOIN (SELECT j.state::text AS state, count(*) AS n FROM datacore.jobs j GROUP BY 1) c
			ON c.state = s.state
		 ORDER BY s.ord;
END $$;
COMMENT ON FUNCTION metrics_jobs() IS 'jobs of this database per state';

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
									   'qdrant_upsert', 'redis_set', 'summarize')),
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

-- RAG: chunking, templates, trigger capture, error rows and status
--
-- Existing pipelines keep their behaviour: chunker none (a row is one point
-- whose id is the row id), watermark capture, no template.  rag_rows starts
-- empty, so rag_status counts rows done from their next sync on.
ALTER TABLE rag_pipelines ALTER COLUMN updated_column DROP NOT NULL, ALTER COLUMN source DROP NOT NULL,
	ADD COLUMN chunker text NOT NULL DEFAULT 'none',
	ADD COLUMN chunk_size integer,
	ADD COLUMN chunk_overlap integer NOT NULL DEFAULT 0,
	ADD COLUMN template text,
	ADD COLUMN capture text NOT NULL DEFAULT 'watermark',
	ADD COLUMN max_batch_chars integer,
	ADD COLUMN last_sync_start timestamptz,
	ADD COLUMN last_sync_rows bigint,
	ADD COLUMN last_sync_seconds double precision,
	ADD COLUMN s3_bucket text,
	ADD COLUMN s3_prefix text,
	ADD COLUMN s3_server name,
	ADD COLUMN parent text,
	ADD COLUMN retired_collection text,
	ADD CONSTRAINT rag_pipelines_chunker_check CHECK (chunker IN ('none', 'character', 'recursive')),
	ADD CONSTRAINT rag_pipelines_chunk_size_check CHECK (CASE WHEN chunker = 'none' THEN chunk_size IS NULL AND chunk_overlap = 0 ELSE chunk_size BETWEEN 1 AND 1000000 AND chunk_overlap >= 0 AND chunk_overlap < chunk_size END),
	ADD CONSTRAINT rag_pipelines_capture_check CHECK (capture = 'trigger' OR capture = 'watermark' AND updated_column IS NOT NULL OR capture = 'etag' AND s3_bucket IS NOT NULL),
	ADD CONSTRAINT rag_pipelines_source_check CHECK ((source IS NULL) = (s3_bucket IS NOT NULL) AND (s3_bucket IS NULL OR chunker <> 'none')),
	ADD CONSTRAINT rag_pipelines_max_batch_chars_check CHECK (max_batch_chars >= 1);
COMMENT ON COLUMN rag_pipelines.chunker IS 'none (a row is one point), character or recursive';
COMMENT ON COLUMN rag_pipelines.chunk_size IS 'maximum characters per chunk (not for chunker none)';
COMMENT ON COLUMN rag_pipelines.chunk_overlap IS 'characters a chunk repeats from the end of the one before';
COMMENT ON COLUMN rag_pipelines.template IS 'text embedded for each chunk, $chunk and $column replaced; NULL = the chunk';
COMMENT ON COLUMN rag_pipelines.capture IS 'watermark (updated_column order) or trigger (rag_queue filled by triggers on the source)';
COMMENT ON COLUMN rag_pipelines.max_batch_chars IS 'an embed request closes before its texts exceed this many characters; NULL = no limit';
COMMENT ON COLUMN rag_pipelines.last_sync_start IS 'start of the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.last_sync_rows IS 'rows sent by the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.last_sync_seconds IS 'duration of the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.s3_bucket IS 'for a pipeline of S3 documents (rag_create_s3): the bucket; source is then NULL';
COMMENT ON COLUMN rag_pipelines.s3_prefix IS 'for a pipeline of S3 documents: the key prefix';
COMMENT ON COLUMN rag_pipelines.s3_server IS 'for a pipeline of S3 documents: the datacore_s3 server';
COMMENT ON COLUMN rag_pipelines.parent IS 'set on the rebuild of a pipeline under a new model (rag_change_model): the pipeline it replaces';
COMMENT ON COLUMN rag_pipelines.retired_collection IS 'collection replaced by a model change, dropped by the next rag_sync';
DROP FUNCTION rag_create(text, regclass, name, name, name, text, name[], text, integer, name, name);
-- RAG pipelines, continued: chunking, the per-row state of a pipeline
-- (rag_rows), the change queue (rag_queue), rows the model refused
-- (rag_errors), trigger capture and the status view.
--
-- The three state tables follow the catalog's ownership rule: a role reads
-- the rows of the pipelines it can see and writes only those of pipelines it
-- owns (row-level security, and a trigger for roles that bypass it).  The
-- capture triggers are the one exception: they run as whoever writes the
-- source, so their function is SECURITY DEFINER and only ever queues ids of
-- the table it fires on for the pipeline made on that table.

CREATE FUNCTION rag_chunks(doc text, chunker text, size integer, overlap integer DEFAULT 0)
	RETURNS TABLE(n integer, chunk text)
	AS 'MODULE_PATHNAME', 'datacore_rag_chunks' LANGUAGE C IMMUTABLE PARALLEL SAFE
	ROWS 8;
COMMENT ON FUNCTION rag_chunks(text, text, integer, integer)
	IS 'chunks of a document (chunker none, character or recursive; size and overlap in characters), numbered from 1';

CREATE FUNCTION rag_format(template text, chunk text, vars jsonb)
	RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_rag_format' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION rag_format(text, text, jsonb)
	IS 'a template with $chunk replaced by the chunk and $name by the key name of vars';

CREATE FUNCTION rag_point_id(pipeline text, row_id text, chunk integer)
	RETURNS uuid
	AS 'MODULE_PATHNAME', 'datacore_rag_point_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION rag_point_id(text, text, integer)
	IS 'Qdrant point id of a chunk: UUID version 5 of pipeline, row id and chunk number';

-- The names a template refers to ($name or ${name}), chunk included, each
-- once, in order of first use.  $$ is a literal dollar sign.
CREATE FUNCTION rag_template_columns(template text) RETURNS name[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $f$
	SELECT coalesce(array_agg(c ORDER BY first), '{}')
	  FROM (SELECT m[1]::name AS c, min(ord) AS first
			  FROM regexp_matches(replace(template, '$$', ''),
								  '\$\{?([A-Za-z_][A-Za-z0-9_]*)', 'g') WITH ORDINALITY r(m, ord)
			 GROUP BY 1) u
$f$;
COMMENT ON FUNCTION rag_template_columns(text) IS 'names a RAG template refers to (internal)';

-- One row per source row that has points: how many chunks it had when it
-- was last sent, so that a row that shrinks (or goes) loses exactly its
-- surplus points.
CREATE TABLE rag_rows (
	pipeline text NOT NULL REFERENCES rag_pipelines (name) ON UPDATE CASCADE ON DELETE CASCADE,
	row_id text NOT NULL,
	chunks integer NOT NULL,
	synced timestamptz NOT NULL DEFAULT now(),
	etag text,
	PRIMARY KEY (pipeline, row_id)
);
COMMENT ON TABLE rag_rows IS 'rows of RAG pipelines that have points in Qdrant, and how many';
COMMENT ON COLUMN rag_rows.etag IS 'S3 documents: the ETag of the object when it was sent';

-- Ids waiting for rag_sync: queued by the capture triggers,
-- rag_enqueue_existing and rag_retry_errors.  A row queued again before the
-- sync took it keeps one entry, with the newer time.
CREATE TABLE rag_queue (
	pipeline text NOT NULL REFERENCES rag_pipelines (name) ON UPDATE CASCADE ON DELETE CASCADE,
	row_id text NOT NULL,
	queued timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (pipeline, row_id)
);
CREATE INDEX rag_queue_order ON rag_queue (pipeline, queued, row_id);
COMMENT ON TABLE rag_queue IS 'row ids of RAG pipelines waiting to be sent by rag_sync';

-- Rows the embedding model refused; the sync went on without them.
CREATE TABLE rag_errors (
	pipeline text NOT NULL REFERENCES rag_pipelines (name) ON UPDATE CASCADE ON DELETE CASCADE,
	row_id text NOT NULL,
	error text NOT NULL,
	sqlstate text NOT NULL,
	attempts integer NOT NULL DEFAULT 1,
	at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, row_id)
);
COMMENT ON TABLE rag_errors IS 'rows of RAG pipelines that the embedding model refused, with the error';

SELECT pg_catalog.pg_extension_config_dump('rag_rows', '');
SELECT pg_catalog.pg_extension_config_dump('rag_queue', '');
SELECT pg_catalog.pg_extension_config_dump('rag_errors', '');

ALTER TABLE rag_rows ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_errors ENABLE ROW LEVEL SECURITY;
-- reading goes through the catalog's own policy: the pipelines a role sees
CREATE POLICY rag_rows_read ON rag_rows FOR SELECT
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline));
CREATE POLICY rag_rows_write ON rag_rows FOR ALL
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
					AND p.owner = pg_catalog.quote_ident(current_user)::regrole))
	WITH CHECK (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
						 AND p.owner = pg_catalog.quote_ident(current_user)::regrole));
CREATE POLICY rag_queue_read ON rag_queue FOR SELECT
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline));
CREATE POLICY rag_queue_write ON rag_queue FOR ALL
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
					AND p.owner = pg_catalog.quote_ident(current_user)::regrole))
	WITH CHECK (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
						 AND p.owner = pg_catalog.quote_ident(current_user)::regrole));
CREATE POLICY rag_errors_read ON rag_errors FOR SELECT
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline));
CREATE POLICY rag_errors_write ON rag_errors FOR ALL
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
					AND p.owner = pg_catalog.quote_ident(current_user)::regrole))
	WITH CHECK (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
						 AND p.owner = pg_catalog.quote_ident(current_user)::regrole));
GRANT SELECT, INSERT, UPDATE, DELETE ON rag_rows, rag_queue, rag_errors TO PUBLIC;

-- The catalog's rule for roles that bypass row-level security (the only
-- roles that see every pipeline here): only the pipeline's owner (or a
-- superuser) writes its state.  Rows of a pipeline being dropped go by
-- cascade.  Statement-level, with transition tables, so that a batch of
-- thousands of rows costs one check.
CREATE FUNCTION rag_state_guard() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me regrole := quote_ident(current_user)::regrole;
	bad text;
BEGIN
	IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = me) THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'DELETE' THEN
		SELECT o.pipeline INTO bad FROM rag_old o
		 WHERE EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = o.pipeline AND p.owner <> me) LIMIT 1;
	ELSIF TG_OP = 'INSERT' THEN
		SELECT n.pipeline INTO bad FROM rag_new n
		 WHERE EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = n.pipeline AND p.owner <> me) LIMIT 1;
	ELSE
		SELECT x.pipeline INTO bad FROM (SELECT o.pipeline FROM rag_old o UNION SELECT n.pipeline FROM rag_new n) x
		 WHERE EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = x.pipeline AND p.owner <> me) LIMIT 1;
	END IF;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', bad
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Only the pipeline''s owner changes %s.', TG_TABLE_NAME);
	END IF;
	RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION rag_state_guard() FROM PUBLIC;
COMMENT ON FUNCTION rag_state_guard() IS 'refuse writes to the state of other roles'' RAG pipelines, also for BYPASSRLS roles (internal)';
CREATE TRIGGER rag_rows_guard_insert AFTER INSERT ON rag_rows
	REFERENCING NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_rows_guard_update AFTER UPDATE ON rag_rows
	REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_rows_guard_delete AFTER DELETE ON rag_rows
	REFERENCING OLD TABLE AS rag_old FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_queue_guard_insert AFTER INSERT ON rag_queue
	REFERENCING NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_queue_guard_update AFTER UPDATE ON rag_queue
	REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_queue_guard_delete AFTER DELETE ON rag_queue
	REFERENCING OLD TABLE AS rag_old FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_errors_guard_insert AFTER INSERT ON rag_errors
	REFERENCING NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_errors_guard_update AFTER UPDATE ON rag_errors
	REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_errors_guard_delete AFTER DELETE ON rag_errors
	REFERENCING OLD TABLE AS rag_old FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();

/*
 * rag_send: one batch of rag_sync.  ids, texts, payloads and vars describe
 * the batch's rows (vars: the template's columns); gone lists ids of rows
 * that no longer exist.  Each row is chunked; the chunks are embedded in
 * requests of at most batch_size texts and max_batch_chars characters; all
 * points are upserted; then the points a row no longer has (fewer chunks,
 * blank text, row gone) are deleted and rag_rows records what each row has.
 * Returns the number of rows sent.
 *
 * When a request fails in a way one input can cause (HTTP 400, a bad or
 * empty vector, a reply too large), its texts are embedded one by one: a row
 * with a text that fails alone goes to rag_errors and keeps its old points,
 * the others are sent.  If every text of such a request fails alone, the
 * fault is not the rows' and the error is raised.  Any other error
 * (connection, timeout, 5xx, an open breaker) is raised and the caller's
 * transaction keeps the batch queued.
 *
 * Runs as the caller, who holds the pipeline's lock (rag_sync); everything
 * it writes is the caller's by row-level security.
 */
CREATE FUNCTION rag_send(p rag_pipelines, ids jsonb[], texts text[], payloads jsonb[],
						 vars jsonb[], gone text[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c_rows integer[];
	c_ids jsonb[];
	c_texts text[];
	c_payloads jsonb[];
	n integer;
	i integer := 1;
	j integer;
	lo integer;
	chars bigint;
	pts jsonb;
	all_pts jsonb[] := '{}';
	vec real[];
	dim_min integer;
	dim_max integer;
	ok integer;
	failed integer[] := '{}';
	f_state text[] := '{}';
	f_text text[] := '{}';
	e_state text;
	e_msg text;
	e_detail text;
	dels text[];
	s_ids text[];
	s_chunks integer[];
BEGIN
	IF p.owner IS DISTINCT FROM quote_ident(current_user)::regrole THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT array_agg(r.ord ORDER BY r.ord, c.n),
		   array_agg(CASE WHEN p.chunker = 'none' THEN r.id
						  ELSE to_jsonb(datacore.rag_point_id(coalesce(p.parent, p.name), r.id #>> '{}', c.n)) END
					 ORDER BY r.ord, c.n),
		   array_agg(CASE WHEN p.template IS NULL THEN c.chunk
						  ELSE datacore.rag_format(p.template, c.chunk, r.vars) END
					 ORDER BY r.ord, c.n),
		   array_agg(r.payload || jsonb_build_object('id', r.id, 'text', c.chunk)
					 || CASE WHEN p.chunker = 'none' THEN '{}'::jsonb
							 ELSE jsonb_build_object('chunk', c.n) END
					 ORDER BY r.ord, c.n)
	  INTO c_rows, c_ids, c_texts, c_payloads
	  FROM unnest(ids, texts, payloads, vars) WITH ORDINALITY r(id, txt, payload, vars, ord)
	  CROSS JOIN LATERAL datacore.rag_chunks(r.txt, p.chunker, p.chunk_size, p.chunk_overlap) c;
	n := coalesce(cardinality(c_texts), 0);

	WHILE i <= n LOOP
		-- a request closes at batch_size texts or before max_batch_chars
		lo := i;
		chars := length(c_texts[i]);
		i := i + 1;
		WHILE i <= n AND i - lo < p.batch_size
			  AND (p.max_batch_chars IS NULL OR chars + length(c_texts[i]) <= p.max_batch_chars) LOOP
			chars := chars + length(c_texts[i]);
			i := i + 1;
		END LOOP;

		BEGIN
			SELECT jsonb_agg(jsonb_build_object('id', c_ids[lo + e.idx - 1], 'vector', to_jsonb(e.embedding),
												'payload', c_payloads[lo + e.idx - 1]) ORDER BY e.idx),
				   min(cardinality(e.embedding)), max(cardinality(e.embedding))
			  INTO pts, dim_min, dim_max
			  FROM datacore.ollama_embed(c_texts[lo:i - 1], p.model, p.ollama_server) e;
			IF coalesce(dim_min, 0) = 0 THEN
				RAISE EXCEPTION 'server "%" returned an empty embedding', p.ollama_server
					USING ERRCODE = 'fdw_invalid_string_format';
			END IF;
		EXCEPTION WHEN data_exception OR fdw_invalid_string_format OR program_limit_exceeded THEN
			-- one input may be at fault: embed the texts one by one
			GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
			pts := '[]';
			ok := 0;
			dim_min := NULL;
			FOR j IN lo .. i - 1 LOOP
				CONTINUE WHEN c_rows[j] = ANY (failed);
				BEGIN
					vec := datacore.ollama_embed(c_texts[j], p.model, p.ollama_server);
					IF coalesce(cardinality(vec), 0) = 0 THEN
						RAISE EXCEPTION 'server "%" returned an empty embedding', p.ollama_server
							USING ERRCODE = 'fdw_invalid_string_format';
					END IF;
					IF cardinality(vec) <> coalesce(p.dimension, dim_min, cardinality(vec)) THEN
						RAISE EXCEPTION 'embedding has % dimensions, the collection has %',
								cardinality(vec), coalesce(p.dimension, dim_min)
							USING ERRCODE = 'data_exception';
					END IF;
					dim_min := cardinality(vec);
					pts := pts || jsonb_build_array(jsonb_build_object('id', c_ids[j], 'vector', to_jsonb(vec),
																	   'payload', c_payloads[j]));
					ok := ok + 1;
				EXCEPTION WHEN data_exception OR fdw_invalid_string_format OR program_limit_exceeded THEN
					GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
					failed := failed || c_rows[j];
					f_state := f_state || e_state;
					f_text := f_text || CASE WHEN e_detail = '' THEN e_msg ELSE e_msg || ': ' || e_detail END;
				END;
			END LOOP;
			IF ok = 0 AND i - lo > 1 THEN
				RAISE EXCEPTION USING ERRCODE = e_state, MESSAGE = e_msg, DETAIL = e_detail,
					HINT = 'Every text of the request failed on its own too, so the rows were kept queued.';
			END IF;
			dim_max := dim_min;
			pts := nullif(pts, '[]');
		END;
		CONTINUE WHEN pts IS NULL;

		-- (ollama_embed already refuses replies of mixed sizes)
		IF dim_min <> p.dimension THEN
			RAISE EXCEPTION 'embeddings of rag pipeline "%" have % dimensions, the collection has %',
					p.name, dim_min, p.dimension
				USING ERRCODE = 'data_exception',
					  DETAIL = format('Collection "%s" was created for vectors of %s dimensions.', p.collection, p.dimension),
					  HINT = format('After changing the embedding model, rebuild with: SELECT datacore.rag_reset(%L, drop_collection => true);', p.name);
		END IF;
		IF p.dimension IS NULL THEN
			PERFORM datacore.qdrant_create_collection(p.collection, dim_min, 'Cosine', true,
													  p.qdrant_server);
			p.dimension := dim_min;
			UPDATE datacore.rag_pipelines r SET dimension = dim_min WHERE r.name = p.name;
		END IF;
		all_pts := all_pts || pts;
	END LOOP;

	-- a failed row sends none of its chunks: its old points stay as they were
	FOREACH pts IN ARRAY all_pts LOOP
		IF cardinality(failed) > 0 THEN
			SELECT jsonb_agg(e ORDER BY o) INTO pts FROM jsonb_array_elements(pts) WITH ORDINALITY x(e, o)
			 WHERE NOT (e->'payload'->'id') = ANY (SELECT ids[f] FROM unnest(failed) f);
			CONTINUE WHEN pts IS NULL;
		END IF;
		PERFORM datacore.qdrant_upsert(p.collection, pts, true, p.qdrant_server);
	END LOOP;

	-- the points each row (or gone row) no longer has: with chunker none the
	-- row's one point when it has no text; otherwise the chunks from the new
	-- count + 1 up to the count rag_rows remembers
	SELECT array_agg(x.row_id), array_agg(x.chunks) INTO s_ids, s_chunks
	  FROM (SELECT DISTINCT ON (y.row_id) y.row_id, y.chunks
			  FROM (SELECT r.id #>> '{}' AS row_id, coalesce(k.chunks, 0) AS chunks
					  FROM unnest(ids) WITH ORDINALITY r(id, ord)
					  LEFT JOIN (SELECT c, count(*)::integer AS chunks FROM unnest(c_rows) c GROUP BY c) k
						ON k.c = r.ord
					 WHERE r.ord <> ALL (failed)
					UNION ALL
					SELECT g, 0 FROM unnest(gone) g) y
			 ORDER BY y.row_id, y.chunks DESC) x;
	SELECT array_agg(d) INTO dels FROM (
		SELECT s.row_id AS d FROM unnest(s_ids, s_chunks) s(row_id, chunks)
		 WHERE p.chunker = 'none' AND s.chunks = 0
		UNION ALL
		SELECT datacore.rag_point_id(coalesce(p.parent, p.name), s.row_id, g)::text
		  FROM unnest(s_ids, s_chunks) s(row_id, chunks)
		  JOIN datacore.rag_rows r ON r.pipeline = p.name AND r.row_id = s.row_id
		 CROSS JOIN generate_series(s.chunks + 1, r.chunks) g
		 WHERE p.chunker <> 'none') x;
	IF dels IS NOT NULL AND p.dimension IS NOT NULL THEN
		PERFORM datacore.qdrant_delete(p.collection, dels, true, p.qdrant_server);
	END IF;

	INSERT INTO datacore.rag_rows AS r (pipeline, row_id, chunks)
		SELECT p.name, s.row_id, s.chunks FROM unnest(s_ids, s_chunks) s(row_id, chunks) WHERE s.chunks > 0
		ON CONFLICT (pipeline, row_id) DO UPDATE SET chunks = excluded.chunks, synced = excluded.synced;
	DELETE FROM datacore.rag_rows r USING unnest(s_ids, s_chunks) s(row_id, chunks)
	 WHERE r.pipeline = p.name AND r.row_id = s.row_id AND s.chunks = 0;
	DELETE FROM datacore.rag_errors e
	 WHERE e.pipeline = p.name AND e.row_id = ANY (s_ids);
	INSERT INTO datacore.rag_errors AS e (pipeline, row_id, error, sqlstate)
		SELECT DISTINCT ON (ids[f.r] #>> '{}') p.name, ids[f.r] #>> '{}', f.msg, f.state
		  FROM unnest(failed, f_state, f_text) f(r, state, msg)
		 ORDER BY ids[f.r] #>> '{}'
		ON CONFLICT (pipeline, row_id) DO UPDATE
		   SET error = excluded.error, sqlstate = excluded.sqlstate,
			   attempts = e.attempts + 1, at = excluded.at;
	RETURN coalesce(cardinality(s_ids), 0);
END $$;
COMMENT ON FUNCTION rag_send(rag_pipelines, jsonb[], text[], jsonb[], jsonb[], text[])
	IS 'embed, upsert and delete one batch of a RAG pipeline''s rows (internal, called by rag_sync)';

-- Whether every named column of rel that exists has a built-in type: below
-- FirstNormalObjectId, looking through domains and array elements.
-- Built-in types have only built-in casts and operators.
CREATE FUNCTION rag_builtin_types(rel regclass, cols name[]) RETURNS boolean
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
	WITH RECURSIVE t(oid) AS (
		SELECT a.atttypid FROM pg_attribute a
		 WHERE a.attrelid = rel AND a.attname = ANY (cols) AND a.attnum > 0 AND NOT a.attisdropped
		UNION
		SELECT CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.typelem END
		  FROM pg_type y JOIN t ON y.oid = t.oid
		 WHERE y.typtype = 'd' OR y.typelem <> 0)
	SELECT coalesce(bool_and(t.oid < 16384 OR y.typtype = 'd'), true)
	  FROM t JOIN pg_type y ON y.oid = t.oid
$f$;
COMMENT ON FUNCTION rag_builtin_types(regclass, name[]) IS 'whether columns have built-in types only (internal)';

/*
 * The capture trigger of a trigger pipeline (TG_ARGV[0] names it): queues
 * the ids of the rows a statement inserted, deleted or changed.  An update
 * queues a row only when a column the pipeline reads (id, text, payload or
 * template columns) changed, so unrelated updates cost no embedding.  A
 * TRUNCATE queues every row that has points, which the sync then deletes.
 *
 * It runs as whoever writes the source, who need not be allowed to write
 * the queue, hence SECURITY DEFINER; it only queues ids, and only for the
 * pipeline whose source is the table it fires on, so attaching it elsewhere
 * queues nothing (and the sync reads the rows with the owner's rights).
 */
CREATE FUNCTION rag_capture() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	cmp text;
	-- $1: the pipeline and its rebuilds (rag_change_model)
	ins text := 'INSERT INTO datacore.rag_queue AS q (pipeline, row_id) SELECT DISTINCT n, x.id FROM (%s) x, unnest($1) n '
				'WHERE x.id IS NOT NULL ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued';
	names text[];
BEGIN
	SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = TG_ARGV[0];
	IF NOT FOUND OR p.capture <> 'trigger' OR p.source <> TG_RELID OR p.parent IS NOT NULL THEN
		RETURN NULL;
	END IF;
	names := ARRAY[p.name] || ARRAY(SELECT r.name FROM datacore.rag_pipelines r WHERE r.parent = p.name);
	-- A user-defined type can bring a user-defined cast or operator, which
	-- would run here with this function's rights.  So ids are read only from
	-- a column of a built-in type (through domains and arrays), and rows are
	-- compared only on such columns; otherwise every updated row is queued.
	IF NOT datacore.rag_builtin_types(p.source, ARRAY[p.id_column]) THEN
		RAISE WARNING 'rag pipeline "%" queued nothing: its id column is not of a built-in type', p.name;
		RETURN NULL;
	END IF;
	IF TG_OP = 'INSERT' THEN
		EXECUTE format(ins, format('SELECT n.%I::text AS id FROM rag_new n', p.id_column)) USING names;
	ELSIF TG_OP = 'DELETE' THEN
		EXECUTE format(ins, format('SELECT o.%I::text AS id FROM rag_old o', p.id_column)) USING names;
	ELSIF TG_OP = 'UPDATE' THEN
		SELECT string_agg(format('o.%1$I::text IS NOT DISTINCT FROM n.%1$I::text', c), ' AND ')
		  INTO cmp
		  FROM (SELECT p.text_column AS c
				UNION SELECT unnest(p.payload_columns)
				UNION SELECT u FROM unnest(datacore.rag_template_columns(p.template)) u WHERE u <> 'chunk') cols;
		IF NOT datacore.rag_builtin_types(p.source, p.text_column || p.payload_columns
											|| datacore.rag_template_columns(p.template)) THEN
			cmp := 'false';
		END IF;
		EXECUTE format(ins, format(
			'SELECT n.%1$I::text AS id FROM rag_new n WHERE NOT EXISTS '
			'(SELECT FROM rag_old o WHERE o.%1$I = n.%1$I AND %2$s) '
			'UNION ALL SELECT o.%1$I::text FROM rag_old o WHERE NOT EXISTS '
			'(SELECT FROM rag_new n WHERE n.%1$I = o.%1$I)', p.id_column, cmp)) USING names;
	ELSE
		INSERT INTO datacore.rag_queue AS q (pipeline, row_id)
			SELECT r.pipeline, r.row_id FROM datacore.rag_rows r WHERE r.pipeline = ANY (names)
			ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued;
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION rag_capture() IS 'trigger queueing the changed rows of a trigger-capture RAG pipeline (internal)';

-- Create (or drop) the capture triggers of a pipeline on its source, named
-- "rag:<pipeline>:<event>".  Statement-level with transition tables, so a
-- bulk load queues its rows in one statement.
CREATE FUNCTION rag_capture_triggers(p rag_pipelines, make boolean) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ev record;
BEGIN
	FOR ev IN SELECT * FROM (VALUES ('i', 'INSERT', 'REFERENCING NEW TABLE AS rag_new'),
									('u', 'UPDATE', 'REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new'),
									('d', 'DELETE', 'REFERENCING OLD TABLE AS rag_old'),
									('t', 'TRUNCATE', '')) v(tag, event, ref)
	LOOP
		IF make THEN
			EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION datacore.rag_capture(%L)',
						   format('rag:%s:%s', p.name, ev.tag), ev.event, p.source, ev.ref, p.name);
		ELSIF EXISTS (SELECT FROM pg_class c WHERE c.oid = p.source) THEN
			EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', format('rag:%s:%s', p.name, ev.tag), p.source);
		END IF;
	END LOOP;
END $$;
COMMENT ON FUNCTION rag_capture_triggers(rag_pipelines, boolean) IS 'create or drop the capture triggers of a RAG pipeline (internal)';

CREATE FUNCTION rag_enqueue_existing(name text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_enqueue_existing.name, true);
	n bigint;
BEGIN
	PERFORM datacore.rag_check(p);
	IF p.s3_bucket IS NOT NULL THEN
		INSERT INTO datacore.rag_queue AS q (pipeline, row_id)
			SELECT p.name, o.key FROM datacore.s3_list(p.s3_bucket, p.s3_prefix, p.s3_server) o
			 WHERE datacore.rag_s3_kind(o.key) IS NOT NULL
			ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued;
		GET DIAGNOSTICS n = ROW_COUNT;
		RETURN n;
	END IF;
	EXECUTE format('INSERT INTO datacore.rag_queue AS q (pipeline, row_id) '
				   'SELECT DISTINCT $1, t.%1$I::text FROM %2$s t WHERE t.%1$I IS NOT NULL '
				   'ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued',
				   p.id_column, p.source) USING p.name;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION rag_enqueue_existing(text)
	IS 'queue every row of a RAG pipeline''s source for the next rag_sync; returns the rows queued';

CREATE FUNCTION rag_retry_errors(name text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_retry_errors.name, true);
	n bigint;
BEGIN
	INSERT INTO datacore.rag_queue AS q (pipeline, row_id)
		SELECT e.pipeline, e.row_id FROM datacore.rag_errors e WHERE e.pipeline = p.name
		ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION rag_retry_errors(text)
	IS 'queue the rows in rag_errors of a pipeline for the next rag_sync; returns the rows queued';

-- Documents in S3: a pipeline whose source is the objects under a bucket
-- and prefix (rag_create_s3).  Text (.txt, .text), Markdown (.md,
-- .markdown) and JSON Lines (.jsonl) objects are documents; the object key
-- is the row id, its ETag the change marker (rag_rows.etag).

-- The kind of document an object key names: text, markdown, jsonl or NULL.
CREATE FUNCTION rag_s3_kind(key text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $f$
	SELECT CASE WHEN key ~* '\.(txt|text)$' THEN 'text'
				WHEN key ~* '\.(md|markdown)$' THEN 'markdown'
				WHEN key ~* '\.jsonl$' THEN 'jsonl' END
$f$;
COMMENT ON FUNCTION rag_s3_kind(text) IS 'document kind of an S3 key for RAG: text, markdown, jsonl or NULL (internal)';

-- The text of a document: the object as it is, except JSON Lines, where each
-- non-blank line is an object whose "text" member (or, without one, the
-- whole line) is a paragraph.
CREATE FUNCTION rag_s3_text(key text, body text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $f$
	SELECT CASE WHEN datacore.rag_s3_kind(key) = 'jsonl'
				THEN (SELECT string_agg(coalesce(l::jsonb->>'text', l), E'\n\n' ORDER BY n)
						FROM regexp_split_to_table(body, E'\r?\n') WITH ORDINALITY s(l, n)
					   WHERE btrim(l) <> '')
				ELSE body END
$f$;
COMMENT ON FUNCTION rag_s3_text(text, text) IS 'text of an S3 document for RAG (internal)';

-- What a sync of an S3 pipeline has to do: keys of documents that are new,
-- changed (another ETag) or queued, with their ETag, and keys that have
-- points but are gone (etag NULL).  A document in rag_errors is skipped until
-- it is queued again (rag_retry_errors).  One listing of the prefix.
CREATE FUNCTION rag_s3_changes(p rag_pipelines) RETURNS TABLE(key text, etag text)
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
	WITH o AS (SELECT o.key, o.etag FROM datacore.s3_list(p.s3_bucket, p.s3_prefix, p.s3_server) o
				WHERE datacore.rag_s3_kind(o.key) IS NOT NULL)
	SELECT o.key, o.etag FROM o
	  LEFT JOIN datacore.rag_rows r ON r.pipeline = p.name AND r.row_id = o.key
	 WHERE EXISTS (SELECT FROM datacore.rag_queue q WHERE q.pipeline = p.name AND q.row_id = o.key)
		OR r.etag IS DISTINCT FROM o.etag
		   AND NOT EXISTS (SELECT FROM datacore.rag_errors e WHERE e.pipeline = p.name AND e.row_id = o.key)
	UNION ALL
	SELECT r.row_id, NULL FROM datacore.rag_rows r
	 WHERE r.pipeline = p.name AND NOT EXISTS (SELECT FROM o WHERE o.key = r.row_id)
	UNION ALL
	SELECT q.row_id, NULL FROM datacore.rag_queue q
	 WHERE q.pipeline = p.name AND NOT EXISTS (SELECT FROM o WHERE o.key = q.row_id)
	   AND NOT EXISTS (SELECT FROM datacore.rag_rows r WHERE r.pipeline = p.name AND r.row_id = q.row_id)
	 ORDER BY 1
$f$;
COMMENT ON FUNCTION rag_s3_changes(rag_pipelines) IS 'documents an S3 RAG pipeline must send or delete (internal)';

CREATE FUNCTION rag_create_s3(name text, bucket text, prefix text, collection text,
		chunker text DEFAULT 'recursive', chunk_size integer DEFAULT 1000,
		chunk_overlap integer DEFAULT 0, template text DEFAULT NULL,
		model text DEFAULT NULL, batch_size integer DEFAULT 64, max_batch_chars integer DEFAULT NULL,
		s3_server name DEFAULT 'minio', ollama_server name DEFAULT 'ollama',
		qdrant_server name DEFAULT 'qdrant')
	RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
BEGIN
	PERFORM datacore.rag_create_check(rag_create_s3.name, rag_create_s3.collection, rag_create_s3.batch_size,
									  rag_create_s3.model);
	p.name := rag_create_s3.name;
	p.id_column := 'key';
	p.text_column := 'text';
	p.collection := rag_create_s3.collection;
	p.model := rag_create_s3.model;
	p.batch_size := rag_create_s3.batch_size;
	p.payload_columns := '{}';
	p.ollama_server := rag_create_s3.ollama_server;
	p.qdrant_server := rag_create_s3.qdrant_server;
	p.chunker := rag_create_s3.chunker;
	p.chunk_size := rag_create_s3.chunk_size;
	p.chunk_overlap := coalesce(rag_create_s3.chunk_overlap, 0);
	p.template := rag_create_s3.template;
	p.capture := 'etag';
	p.max_batch_chars := rag_create_s3.max_batch_chars;
	p.s3_bucket := rag_create_s3.bucket;
	p.s3_prefix := coalesce(rag_create_s3.prefix, '');
	p.s3_server := rag_create_s3.s3_server;
	PERFORM datacore.rag_check(p);
	BEGIN
		INSERT INTO datacore.rag_pipelines (name, id_column, text_column, collection, model, batch_size,
				ollama_server, qdrant_server, chunker, chunk_size, chunk_overlap, template, capture,
				max_batch_chars, s3_bucket, s3_prefix, s3_server)
			VALUES (p.name, p.id_column, p.text_column, p.collection, p.model, p.batch_size,
					p.ollama_server, p.qdrant_server, p.chunker, p.chunk_size, p.chunk_overlap, p.template,
					p.capture, p.max_batch_chars, p.s3_bucket, p.s3_prefix, p.s3_server);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'rag pipeline "%" already exists', p.name
			USING ERRCODE = 'duplicate_object';
	END;
END $$;
COMMENT ON FUNCTION rag_create_s3(text, text, text, text, text, integer, integer, text, text, integer, integer, name, name, name)
	IS 'register a RAG pipeline of the text, Markdown and JSON Lines documents under an S3 bucket and prefix';

-- The checks of rag_check that are particular to S3 documents.
CREATE FUNCTION rag_check_s3(p rag_pipelines) RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p.s3_bucket = '' THEN
		RAISE EXCEPTION 'bucket must be a non-empty string' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p.s3_server IS NULL THEN
		RAISE EXCEPTION 'server name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF p.chunker IS NOT DISTINCT FROM 'none' THEN
		RAISE EXCEPTION 'a pipeline of S3 documents needs a chunker'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Its points are chunks, with ids derived from the object key.',
				  HINT = 'Pass chunker => ''recursive'' or ''character''.';
	END IF;
END $$;
COMMENT ON FUNCTION rag_check_s3(rag_pipelines) IS 'validate the S3 part of a RAG pipeline (internal)';

/*
 * rag_sync of S3 documents: list the prefix once, then send the new,
 * changed and queued documents batch_size at a time (fetched with
 * s3_get_text) and delete the points of documents that are gone; rag_rows
 * records each document's ETag once Qdrant has it.  The payload carries
 * bucket, key (also as "id"), chunk and text.
 */
CREATE FUNCTION rag_sync_s3(p rag_pipelines, max_batches integer) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	keys text[];
	etags text[];
	gone text[];
	b_keys text[];
	b_etags text[];
	b_ids jsonb[];
	b_texts text[];
	b_payloads jsonb[];
	i integer := 1;
	n integer;
	batches integer := 0;
	total bigint := 0;
	started timestamptz := clock_timestamp();
BEGIN
	IF p.owner IS DISTINCT FROM quote_ident(current_user)::regrole THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT array_agg(c.key ORDER BY c.key) FILTER (WHERE c.etag IS NOT NULL),
		   array_agg(c.etag ORDER BY c.key) FILTER (WHERE c.etag IS NOT NULL),
		   array_agg(c.key ORDER BY c.key) FILTER (WHERE c.etag IS NULL)
	  INTO keys, etags, gone
	  FROM datacore.rag_s3_changes(p) c;
	n := coalesce(cardinality(keys), 0);
	WHILE (i <= n OR gone IS NOT NULL) AND (max_batches IS NULL OR batches < max_batches) LOOP
		b_keys := keys[i:i + p.batch_size - 1];
		b_etags := etags[i:i + p.batch_size - 1];
		SELECT array_agg(to_jsonb(u.k) ORDER BY u.o),
			   array_agg(datacore.rag_s3_text(u.k, datacore.s3_get_text(p.s3_bucket, u.k, p.s3_server)) ORDER BY u.o),
			   array_agg(jsonb_build_object('bucket', p.s3_bucket, 'key', u.k) ORDER BY u.o)
		  INTO b_ids, b_texts, b_payloads
		  FROM unnest(b_keys) WITH ORDINALITY u(k, o);
		total := total + datacore.rag_send(p, b_ids, b_texts, b_payloads, b_payloads, gone);
		SELECT r.dimension INTO p.dimension FROM datacore.rag_pipelines r WHERE r.name = p.name;
		UPDATE datacore.rag_rows r SET etag = u.e
		  FROM unnest(b_keys, b_etags) u(k, e)
		 WHERE r.pipeline = p.name AND r.row_id = u.k;
		DELETE FROM datacore.rag_queue q
		 WHERE q.pipeline = p.name AND (q.row_id = ANY (b_keys) OR q.row_id = ANY (gone));
		gone := NULL;
		i := i + p.batch_size;
		batches := batches + 1;
	END LOOP;
	UPDATE datacore.rag_pipelines r
	   SET last_run = clock_timestamp(), last_sync_start = started, last_sync_rows = total,
		   last_sync_seconds = extract(epoch FROM clock_timestamp() - started),
		   rows_synced = r.rows_synced + total
	 WHERE r.name = p.name;
	RETURN total;
END $$;
COMMENT ON FUNCTION rag_sync_s3(rag_pipelines, integer) IS 'rag_sync of a pipeline of S3 documents (internal)';

/*
 * rag_change_model: rebuild a pipeline's collection under another embedding
 * model without interrupting searches.  A second catalog row, the rebuild
 * (name "next~<hash>", parent = the pipeline), embeds every row into
 * new_collection with new_model as part of each rag_sync of the pipeline
 * (rag_rebuild), while rag_search and rag_answer keep using the old
 * collection.  Once the rebuild has nothing pending, the same sync switches
 * the pipeline to the new model and collection in one catalog update, and the
 * next sync drops the old collection.  Calling it again replaces a rebuild
 * under way.
 */
CREATE FUNCTION rag_change_model(name text, new_model text, new_collection text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_change_model.name, true);
	s datacore.rag_pipelines;
	old record;
BEGIN
	IF p.parent IS NOT NULL THEN
		RAISE EXCEPTION 'rag pipeline "%" is the rebuild of pipeline "%"', p.name, p.parent
			USING ERRCODE = 'wrong_object_type',
				  HINT = format('Change the model of "%s" instead.', p.parent);
	END IF;
	IF new_model IS NULL OR new_model = '' THEN
		RAISE EXCEPTION 'new_model must be a non-empty string'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	s := p;
	s.name := 'next~' || left(md5(p.name), 24);
	s.parent := p.name;
	s.model := new_model;
	s.collection := coalesce(new_collection,
							 left(p.collection || '__' || regexp_replace(new_model, '[^A-Za-z0-9_-]+', '_', 'g'), 255));
	IF s.collection = p.collection OR s.collection = '' THEN
		RAISE EXCEPTION 'the new collection must differ from the current one'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The pipeline uses collection "%s".', p.collection);
	END IF;
	s.dimension := NULL;
	s.last_updated := NULL;
	s.last_id := NULL;
	s.rows_synced := 0;
	s.last_run := NULL;
	s.last_sync_start := NULL;
	s.last_sync_rows := NULL;
	s.last_sync_seconds := NULL;
	s.retired_collection := NULL;
	s.created := now();
	PERFORM datacore.rag_check(s);
	FOR old IN SELECT r.name, r.collection FROM datacore.rag_pipelines r WHERE r.parent = p.name LOOP
		PERFORM datacore.qdrant_drop_collection(old.collection, true, p.qdrant_server);
		DELETE FROM datacore.rag_pipelines r WHERE r.name = old.name;
	END LOOP;
	-- a collection left from an earlier attempt would hold stale points
	PERFORM datacore.qdrant_drop_collection(s.collection, true, s.qdrant_server);
	INSERT INTO datacore.rag_pipelines SELECT s.*;
	IF s.capture = 'trigger' THEN
		PERFORM datacore.rag_enqueue_existing(s.name);
	END IF;
	RETURN s.collection;
END $$;
COMMENT ON FUNCTION rag_change_model(text, text, text)
	IS 'rebuild a pipeline''s collection with another embedding model during its syncs, then switch to it; returns the new collection';

/*
 * rag_rebuild: the part of rag_sync(p) that advances a rebuild of p under
 * way and switches p to it once nothing is pending.  Returns the rows the
 * rebuild sent.
 */
CREATE FUNCTION rag_rebuild(p rag_pipelines, max_batches integer) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s datacore.rag_pipelines;
	sent bigint;
BEGIN
	IF p.parent IS NOT NULL THEN
		RETURN 0;
	END IF;
	SELECT * INTO s FROM datacore.rag_pipelines r WHERE r.parent = p.name;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	sent := datacore.rag_sync(s.name, max_batches);
	IF datacore.rag_pending(s.name) > 0 THEN
		RETURN sent;
	END IF;
	SELECT * INTO s FROM datacore.rag_pipelines r WHERE r.name = s.name;
	-- the switch: searches use the new collection from this commit on
	DELETE FROM datacore.rag_rows r WHERE r.pipeline = p.name;
	DELETE FROM datacore.rag_errors e WHERE e.pipeline = p.name;
	UPDATE datacore.rag_rows r SET pipeline = p.name WHERE r.pipeline = s.name;
	UPDATE datacore.rag_errors e SET pipeline = p.name WHERE e.pipeline = s.name;
	UPDATE datacore.rag_pipelines r
	   SET model = s.model, collection = s.collection, dimension = s.dimension,
		   last_updated = s.last_updated, last_id = s.last_id,
		   retired_collection = p.collection
	 WHERE r.name = p.name;
	DELETE FROM datacore.rag_pipelines r WHERE r.name = s.name;
	RETURN sent;
END $$;
COMMENT ON FUNCTION rag_rebuild(rag_pipelines, integer)
	IS 'advance a model change of a RAG pipeline and switch to it when complete (internal, called by rag_sync)';

-- Rows of a pipeline that the next sync would send, counted exactly: the
-- queue, plus for a watermark pipeline the rows after the watermark that are
-- not queued.  NULL when the caller may not read the source's columns.
CREATE FUNCTION rag_pending(name text) RETURNS bigint
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_pending.name);
	n bigint;
	m bigint;
	t_id regtype;
	t_upd regtype;
BEGIN
	SELECT count(*) INTO n FROM datacore.rag_queue q WHERE q.pipeline = p.name;
	IF p.s3_bucket IS NOT NULL THEN
		-- new or changed objects not queued, and objects gone: one listing
		SELECT n + count(*) INTO n FROM datacore.rag_s3_changes(p) c
		 WHERE NOT EXISTS (SELECT FROM datacore.rag_queue q WHERE q.pipeline = p.name AND q.row_id = c.key);
		RETURN n;
	END IF;
	IF p.capture <> 'watermark' THEN
		RETURN n;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.source)
	   OR NOT has_column_privilege(p.source, p.id_column, 'SELECT')
	   OR NOT has_column_privilege(p.source, p.updated_column, 'SELECT') THEN
		RETURN NULL;
	END IF;
	t_id := datacore.rag_column_type(p.source, p.id_column, 'id');
	t_upd := datacore.rag_column_type(p.source, p.updated_column, 'updated');
	EXECUTE format($q$
		SELECT count(*) FROM %1$s t
		 WHERE t.%2$I IS NOT NULL AND t.%3$I IS NOT NULL
		   AND ($1::text IS NULL OR (t.%3$I, t.%2$I) > ($1::%4$s, $2::%5$s))
		   AND NOT EXISTS (SELECT FROM datacore.rag_queue q WHERE q.pipeline = $3 AND q.row_id = t.%2$I::text)$q$,
		p.source, p.id_column, p.updated_column, t_upd, t_id)
		INTO m USING p.last_updated, p.last_id, p.name;
	RETURN n + m;
END $$;
COMMENT ON FUNCTION rag_pending(text) IS 'rows a RAG pipeline''s next rag_sync would send, counted exactly';

-- security_invoker: the catalog's row-level security applies to whoever
-- reads the view, not to the view's owner.
CREATE VIEW rag_status WITH (security_invoker = true) AS
SELECT p.name AS pipeline, p.owner, p.capture, p.source, p.collection, p.model, p.chunker,
	   datacore.rag_pending(p.name) AS pending,
	   (SELECT count(*) FROM datacore.rag_rows r WHERE r.pipeline = p.name) AS done,
	   (SELECT count(*) FROM datacore.rag_errors e WHERE e.pipeline = p.name) AS errors,
	   (SELECT e.error FROM datacore.rag_errors e WHERE e.pipeline = p.name
		 ORDER BY e.at DESC, e.row_id LIMIT 1) AS last_error,
	   p.last_sync_start, p.last_run AS last_sync_end, p.last_sync_rows,
	   CASE WHEN p.last_sync_seconds > 0 THEN round((p.last_sync_rows / p.last_sync_seconds)::numeric, 1) END
		   AS rows_per_second,
	   p.rows_synced, p.dimension
  FROM datacore.rag_pipelines p;
COMMENT ON VIEW rag_status IS 'progress of each visible RAG pipeline: rows pending, done and in error, and the last sync';
GRANT SELECT ON rag_status TO PUBLIC;

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
	-- may have done so meanwhile.  NO KEY UPDATE: the lock must not wait for
	-- writers whose capture triggers are queueing rows (their foreign key
	-- checks hold KEY SHARE on the row until they commit).
	IF FOUND AND for_update AND p.owner = me THEN
		SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline FOR NO KEY UPDATE;
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

CREATE OR REPLACE FUNCTION rag_check(p rag_pipelines) RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	kind "char";
	t regtype;
	col name;
	srv record;
BEGIN
	IF p.s3_bucket IS NOT NULL THEN
		PERFORM datacore.rag_check_s3(p);
	ELSE
	SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = p.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'source relation of rag pipeline "%" does not exist', p.name
			USING ERRCODE = 'undefined_table',
				  DETAIL = 'The table or view the pipeline was created on has been dropped.',
				  HINT = format('Drop the pipeline with: SELECT datacore.rag_drop(%L);', p.name);
	END IF;
	IF kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
		RAISE EXCEPTION '% is not a table, view, materialized view or foreign table', p.source
			USING ERRCODE = 'wrong_object_type';
	END IF;

	t := datacore.rag_column_type(p.source, p.id_column, 'id');
	IF t NOT IN ('smallint'::regtype, 'integer', 'bigint', 'uuid') THEN
		RAISE EXCEPTION 'id column "%" has type %, not an integer or uuid', p.id_column, t
			USING ERRCODE = 'datatype_mismatch',
				  DETAIL = 'Qdrant point ids are unsigned integers or UUIDs; the pipeline uses the row id as the point id.',
				  HINT = 'Use a view whose id column is an integer or uuid, e.g. a uuid derived from the key.';
	END IF;
	t := datacore.rag_column_type(p.source, p.text_column, 'text');
	IF t NOT IN ('text'::regtype, 'character varying', 'character', 'name') THEN
		RAISE EXCEPTION 'text column "%" has type %, not a string type', p.text_column, t
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'To embed other values or several columns, create a view with one text column and use it as the source.';
	END IF;
	IF p.capture IS DISTINCT FROM 'watermark' AND p.capture IS DISTINCT FROM 'trigger' THEN
		RAISE EXCEPTION 'capture must be ''watermark'' or ''trigger'', not %', coalesce(quote_literal(p.capture), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p.updated_column IS NULL AND p.capture = 'watermark' THEN
		RAISE EXCEPTION 'updated column must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  DETAIL = 'A watermark pipeline finds changed rows by their updated column.',
				  HINT = 'Pass capture => ''trigger'' to capture changes with triggers instead.';
	END IF;
	IF p.updated_column IS NOT NULL THEN
		t := datacore.rag_column_type(p.source, p.updated_column, 'updated');
		IF t NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone', 'date',
					 'smallint', 'integer', 'bigint', 'numeric') THEN
			RAISE EXCEPTION 'updated column "%" has type %, not a timestamp, date or integer', p.updated_column, t
				USING ERRCODE = 'datatype_mismatch',
					  DETAIL = 'The updated column orders rows for incremental sync; it must grow whenever a row changes.';
		END IF;
	END IF;
	IF p.capture = 'trigger' AND kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', p.source
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = 'Trigger capture needs triggers on the source, which only tables have.',
				  HINT = 'Use capture => ''watermark'' for views and foreign tables.';
	END IF;
	END IF;

	-- raises on a bad chunker, size or overlap (nothing is chunked)
	PERFORM datacore.rag_chunks(NULL, p.chunker, p.chunk_size, p.chunk_overlap);
	IF p.chunker = 'none' AND (p.chunk_size IS NOT NULL OR p.chunk_overlap <> 0) THEN
		RAISE EXCEPTION 'chunk_size and chunk_overlap need a chunker'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass chunker => ''recursive'' or ''character''.';
	END IF;
	IF p.max_batch_chars < 1 THEN
		RAISE EXCEPTION 'max_batch_chars must be at least 1'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL for no limit.';
	END IF;
	IF p.template IS NOT NULL THEN
		IF NOT 'chunk' = ANY (datacore.rag_template_columns(p.template)) THEN
			RAISE EXCEPTION 'template must contain $chunk'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'The template is what gets embedded for each chunk, for example ''$title: $chunk''.';
		END IF;
		FOREACH col IN ARRAY datacore.rag_template_columns(p.template) LOOP
			CONTINUE WHEN col = 'chunk' OR p.s3_bucket IS NOT NULL AND col IN ('bucket', 'key');
			IF p.s3_bucket IS NOT NULL THEN
				RAISE EXCEPTION 'template of an S3 pipeline names "%"', col
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = 'A template of S3 documents can use $chunk, $bucket and $key.';
			END IF;
			PERFORM datacore.rag_column_type(p.source, col, 'template');
		END LOOP;
	END IF;

	IF array_position(p.payload_columns, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'payload_columns must not contain nulls'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOREACH col IN ARRAY p.payload_columns LOOP
		PERFORM datacore.rag_column_type(p.source, col, 'payload');
		IF col IN ('id', 'text') THEN
			RAISE EXCEPTION 'payload column "%" collides with a key the pipeline sets', col
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Every point''s payload holds the row id under "id" and the embedded text under "text".',
					  HINT = 'Use a view that renames the column.';
		END IF;
	END LOOP;
	IF cardinality(p.payload_columns) <> (SELECT count(DISTINCT c) FROM unnest(p.payload_columns) c) THEN
		RAISE EXCEPTION 'payload_columns lists a column twice'
			USING ERRCODE = 'duplicate_column';
	END IF;

	FOR srv IN SELECT * FROM (VALUES (p.ollama_server, 'datacore_ollama', 'url ''http://127.0.0.1:11434'''),
									 (p.qdrant_server, 'datacore_qdrant', 'url ''http://127.0.0.1:6333''')) v(server, wrapper, example)
				   UNION ALL
				   SELECT p.s3_server, 'datacore_s3', 'url ''http://127.0.0.1:9000'', region ''us-east-1''' WHERE p.s3_bucket IS NOT NULL
	LOOP
		IF srv.server IS NULL THEN
			RAISE EXCEPTION 'server name must not be null'
				USING ERRCODE = 'null_value_not_allowed';
		END IF;
		IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = srv.server) THEN
			RAISE EXCEPTION 'server "%" does not exist', srv.server
				USING ERRCODE = 'undefined_object',
					  DETAIL = format('A RAG pipeline needs a server of wrapper %s.', srv.wrapper),
					  HINT = format('Create it with: CREATE SERVER %I FOREIGN DATA WRAPPER %s OPTIONS (%s);',
									srv.server, srv.wrapper, srv.example);
		END IF;
		IF NOT EXISTS (SELECT FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
						WHERE s.srvname = srv.server AND w.fdwname = srv.wrapper) THEN
			RAISE EXCEPTION 'server "%" does not belong to wrapper %', srv.server, srv.wrapper
				USING ERRCODE = 'wrong_object_type';
		END IF;
		IF NOT has_server_privilege(srv.server, 'USAGE') THEN
			RAISE EXCEPTION 'permission denied for foreign server %', srv.server
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END LOOP;
END $$;
COMMENT ON FUNCTION rag_check(rag_pipelines) IS 'validate a RAG pipeline''s source, columns and servers (internal)';

CREATE FUNCTION rag_create_check(name text, collection text, batch_size integer, model text)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF rag_create_check.name IS NULL OR rag_create_check.name = '' OR octet_length(rag_create_check.name) > 48 THEN
		RAISE EXCEPTION 'invalid rag pipeline name: %', coalesce(quote_literal(rag_create_check.name), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A pipeline name is a non-empty string of at most 48 bytes.';
	END IF;
	IF rag_create_check.collection IS NULL OR rag_create_check.collection = '' THEN
		RAISE EXCEPTION 'collection must be a non-empty string' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF rag_create_check.batch_size IS NULL OR rag_create_check.batch_size NOT BETWEEN 1 AND 10000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 10000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF rag_create_check.model = '' THEN
		RAISE EXCEPTION 'model must not be an empty string'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL to use the embedding_model option of the Ollama server.';
	END IF;
END $$;
COMMENT ON FUNCTION rag_create_check(text, text, integer, text) IS 'validate the name, collection, batch size and model of a new RAG pipeline (internal)';

CREATE FUNCTION rag_create(name text, source regclass, id_column name, text_column name,
		updated_column name, collection text, payload_columns name[] DEFAULT '{}',
		model text DEFAULT NULL, batch_size integer DEFAULT 64,
		ollama_server name DEFAULT 'ollama', qdrant_server name DEFAULT 'qdrant',
		chunker text DEFAULT 'none', chunk_size integer DEFAULT NULL,
		chunk_overlap integer DEFAULT 0, template text DEFAULT NULL,
		capture text DEFAULT 'watermark', max_batch_chars integer DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
BEGIN
	PERFORM datacore.rag_create_check(rag_create.name, rag_create.collection, rag_create.batch_size,
									  rag_create.model);
	IF rag_create.source IS NULL THEN
		RAISE EXCEPTION 'source must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;

	p.name := rag_create.name;
	p.source := rag_create.source;
	p.id_column := rag_create.id_column;
	p.text_column := rag_create.text_column;
	p.updated_column := rag_create.updated_column;
	p.payload_columns := coalesce(rag_create.payload_columns, '{}');
	p.collection := rag_create.collection;
	p.model := rag_create.model;
	p.batch_size := rag_create.batch_size;
	p.ollama_server := rag_create.ollama_server;
	p.qdrant_server := rag_create.qdrant_server;
	p.chunker := rag_create.chunker;
	p.chunk_size := rag_create.chunk_size;
	p.chunk_overlap := coalesce(rag_create.chunk_overlap, 0);
	p.template := rag_create.template;
	p.capture := rag_create.capture;
	p.max_batch_chars := rag_create.max_batch_chars;
	PERFORM datacore.rag_check(p);

	BEGIN
		INSERT INTO datacore.rag_pipelines (name, source, id_column, text_column, updated_column,
				payload_columns, collection, model, batch_size, ollama_server, qdrant_server,
				chunker, chunk_size, chunk_overlap, template, capture, max_batch_chars)
			VALUES (p.name, p.source, p.id_column, p.text_column, p.updated_column,
					p.payload_columns, p.collection, p.model, p.batch_size,
					p.ollama_server, p.qdrant_server,
					p.chunker, p.chunk_size, p.chunk_overlap, p.template, p.capture, p.max_batch_chars);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'rag pipeline "%" already exists', p.name
			USING ERRCODE = 'duplicate_object';
	END;
	IF p.capture = 'trigger' THEN
		PERFORM datacore.rag_capture_triggers(p, true);
	END IF;
END $$;
COMMENT ON FUNCTION rag_create(text, regclass, name, name, name, text, name[], text, integer, name, name,
							   text, integer, integer, text, text, integer)
	IS 'register a RAG pipeline: rows of source embedded into a Qdrant collection by rag_sync';

CREATE OR REPLACE FUNCTION rag_drop(name text, drop_collection boolean DEFAULT false) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_drop.name, true);
	s record;
BEGIN
	-- a rebuild under way goes too, with its unfinished collection
	FOR s IN SELECT r.name, r.collection FROM datacore.rag_pipelines r WHERE r.parent = p.name LOOP
		PERFORM datacore.qdrant_drop_collection(s.collection, true, p.qdrant_server);
		DELETE FROM datacore.rag_pipelines r WHERE r.name = s.name;
	END LOOP;
	IF drop_collection THEN
		PERFORM datacore.qdrant_drop_collection(p.collection, true, p.qdrant_server);
	END IF;
	-- the job would fail from now on; remove it when pg_cron is reachable here
	IF datacore.rag_cron_database() = current_database()
	   AND EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron')
	   AND octet_length(format('rag_sync:%s:%s', current_database(), p.name)) <= 63 THEN
		PERFORM datacore.rag_unschedule(p.name);
	END IF;
	IF p.capture = 'trigger' THEN
		PERFORM datacore.rag_capture_triggers(p, false);
	END IF;
	-- its rows, queue and errors go with it (foreign keys)
	DELETE FROM datacore.rag_pipelines r WHERE r.name = p.name;
END $$;
COMMENT ON FUNCTION rag_drop(text, boolean)
	IS 'forget a RAG pipeline (and its pg_cron job here); drop_collection also drops the Qdrant collection';

CREATE OR REPLACE FUNCTION rag_reset(name text, drop_collection boolean DEFAULT false) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_reset.name, true);
BEGIN
	IF drop_collection THEN
		PERFORM datacore.qdrant_drop_collection(p.collection, true, p.qdrant_server);
	END IF;
	UPDATE datacore.rag_pipelines r
	   SET last_updated = NULL, last_id = NULL, rows_synced = 0,
		   dimension = CASE WHEN drop_collection THEN NULL ELSE r.dimension END
	 WHERE r.name = p.name;
	DELETE FROM datacore.rag_errors e WHERE e.pipeline = p.name;
	DELETE FROM datacore.rag_queue q WHERE q.pipeline = p.name;
	-- S3 documents: every object is fetched again
	UPDATE datacore.rag_rows r SET etag = NULL WHERE r.pipeline = p.name AND r.etag IS NOT NULL;
	-- without a watermark, everything is sent again by queueing it
	IF p.capture = 'trigger' THEN
		PERFORM datacore.rag_enqueue_existing(p.name);
	END IF;
	-- the rows' chunk counts are kept unless the collection is gone: the next
	-- sync still knows which surplus points to delete
	IF drop_collection THEN
		DELETE FROM datacore.rag_rows r WHERE r.pipeline = p.name;
	END IF;
END $$;
COMMENT ON FUNCTION rag_reset(text, boolean)
	IS 'clear a pipeline''s watermark (trigger capture: queue every row) so the next rag_sync sends every row again';

CREATE OR REPLACE FUNCTION rag_sync(name text, max_batches integer DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	id_type regtype;
	upd_type regtype;
	payload_expr text;
	vars_expr text;
	cols text;
	batch_sql text;
	queue_sql text;
	b_n integer;
	b_ids jsonb[];
	b_texts text[];
	b_payloads jsonb[];
	b_vars jsonb[];
	b_last_upd text;
	b_last_id text;
	q_ids text[];
	q_xmins text[];
	gone text[];
	batches integer := 0;
	total bigint := 0;
	started timestamptz := clock_timestamp();
BEGIN
	IF max_batches < 1 THEN
		RAISE EXCEPTION 'max_batches must be at least 1'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL to sync every changed row.';
	END IF;
	-- the row lock serialises concurrent syncs of one pipeline; a waiting
	-- call then starts from the watermark the first one left
	p := datacore.rag_get(rag_sync.name, true);
	PERFORM datacore.rag_check(p);
	-- the collection a model change replaced: the switch has committed
	IF p.retired_collection IS NOT NULL THEN
		PERFORM datacore.qdrant_drop_collection(p.retired_collection, true, p.qdrant_server);
		UPDATE datacore.rag_pipelines r SET retired_collection = NULL WHERE r.name = p.name;
	END IF;
	IF p.s3_bucket IS NOT NULL THEN
		total := datacore.rag_sync_s3(p, max_batches);
		RETURN total + datacore.rag_rebuild(p, max_batches);
	END IF;
	id_type := datacore.rag_column_type(p.source, p.id_column, 'id');

	IF cardinality(p.payload_columns) = 0 THEN
		payload_expr := '''{}''::jsonb';
	ELSE
		payload_expr := format('(SELECT to_jsonb(c) FROM (SELECT %s) c)',
							   (SELECT string_agg(format('t.%I', col), ', ' ORDER BY ord)
								  FROM unnest(p.payload_columns) WITH ORDINALITY u(col, ord)));
	END IF;
	-- the columns a template names, by name
	SELECT 'jsonb_build_object(' || string_agg(format('%L, t.%I', c, c), ', ') || ')' INTO vars_expr
	  FROM unnest(datacore.rag_template_columns(p.template)) c WHERE c <> 'chunk';
	cols := format('to_jsonb(t.%I) AS id, t.%I::text AS txt, %s AS payload, %s AS vars',
				   p.id_column, p.text_column, payload_expr, coalesce(vars_expr, 'NULL::jsonb'));

	-- $1: the queued ids (text), in queue order; an id the source no longer
	-- has is a deleted row
	queue_sql := format($q$
		SELECT array_agg(b.id ORDER BY b.ord), array_agg(b.txt ORDER BY b.ord),
			   array_agg(b.payload ORDER BY b.ord), array_agg(b.vars ORDER BY b.ord)
		  FROM (SELECT DISTINCT ON (u.ord) %1$s, u.ord
				  FROM unnest($1::%2$s[]) WITH ORDINALITY u(id, ord)
				  JOIN %3$s t ON t.%4$I = u.id
				 ORDER BY u.ord) b$q$,
		cols, id_type, p.source, p.id_column);

	LOOP
		EXIT WHEN batches >= max_batches;
		SELECT array_agg(q.row_id ORDER BY q.queued, q.row_id), array_agg(q.x ORDER BY q.queued, q.row_id)
		  INTO q_ids, q_xmins
		  FROM (SELECT q.row_id, q.queued, q.xmin::text AS x FROM datacore.rag_queue q
				 WHERE q.pipeline = p.name ORDER BY q.queued, q.row_id LIMIT p.batch_size) q;
		EXIT WHEN q_ids IS NULL;
		batches := batches + 1;
		EXECUTE queue_sql INTO b_ids, b_texts, b_payloads, b_vars USING q_ids;
		SELECT array_agg(q.id) INTO gone FROM unnest(q_ids) q(id)
		 WHERE q.id <> ALL (coalesce((SELECT array_agg(b #>> '{}') FROM unnest(b_ids) b), '{}'));
		total := total + datacore.rag_send(p, b_ids, b_texts, b_payloads, b_vars, gone);
		SELECT r.dimension INTO p.dimension FROM datacore.rag_pipelines r WHERE r.name = p.name;
		-- an entry queued again meanwhile has a new xmin and stays
		DELETE FROM datacore.rag_queue q
		 WHERE q.pipeline = p.name
		   AND (q.row_id, q.xmin::text) IN (SELECT * FROM unnest(q_ids, q_xmins));
		EXIT WHEN cardinality(q_ids) < p.batch_size;
	END LOOP;

	IF p.capture = 'watermark' THEN
		upd_type := datacore.rag_column_type(p.source, p.updated_column, 'updated');
		-- $1, $2: the watermark as text, cast back to the columns' types; the
		-- dates and times were stored in ISO 8601, which reads back under any
		-- DateStyle.  An index on (updated, id) makes each batch a range scan.
		batch_sql := format($q$
			SELECT count(*)::integer,
				   array_agg(b.id ORDER BY b.upd, b.rid), array_agg(b.txt ORDER BY b.upd, b.rid),
				   array_agg(b.payload ORDER BY b.upd, b.rid), array_agg(b.vars ORDER BY b.upd, b.rid),
				   (array_agg(to_jsonb(b.upd) #>> '{}' ORDER BY b.upd DESC, b.rid DESC))[1],
				   (array_agg(b.rid::text ORDER BY b.upd DESC, b.rid DESC))[1]
			  FROM (SELECT %1$s, t.%2$I AS upd, t.%3$I AS rid
					  FROM %4$s t
					 WHERE t.%3$I IS NOT NULL AND t.%2$I IS NOT NULL
					   AND ($1::text IS NULL OR (t.%2$I, t.%3$I) > ($1::%5$s, $2::%6$s))
					 ORDER BY t.%2$I, t.%3$I
					 LIMIT %7$s) b$q$,
			cols, p.updated_column, p.id_column, p.source, upd_type, id_type, p.batch_size);
		LOOP
			EXIT WHEN batches >= max_batches;
			EXECUTE batch_sql INTO b_n, b_ids, b_texts, b_payloads, b_vars, b_last_upd, b_last_id
				USING p.last_updated, p.last_id;
			EXIT WHEN b_n = 0;
			batches := batches + 1;
			total := total + datacore.rag_send(p, b_ids, b_texts, b_payloads, b_vars, NULL);
			SELECT r.dimension INTO p.dimension FROM datacore.rag_pipelines r WHERE r.name = p.name;
			-- only now that Qdrant has the batch
			p.last_updated := b_last_upd;
			p.last_id := b_last_id;
			UPDATE datacore.rag_pipelines r
			   SET last_updated = b_last_upd, last_id = b_last_id
			 WHERE r.name = p.name;
			EXIT WHEN b_n < p.batch_size;
		END LOOP;
	END IF;

	UPDATE datacore.rag_pipelines r
	   SET last_run = clock_timestamp(), last_sync_start = started, last_sync_rows = total,
		   last_sync_seconds = extract(epoch FROM clock_timestamp() - started),
		   rows_synced = r.rows_synced + total
	 WHERE r.name = p.name;
	RETURN total + datacore.rag_rebuild(p, max_batches);
END $$;
COMMENT ON FUNCTION rag_sync(text, integer)
	IS 'embed the queued rows and the rows changed since the watermark into the pipeline''s Qdrant collection; returns rows sent';

DROP FUNCTION rag_answer(text, text, integer, text);
CREATE FUNCTION rag_answer(name text, question text, k integer DEFAULT 5, model text DEFAULT NULL,
						   filter jsonb DEFAULT NULL, max_context_chars integer DEFAULT 8000)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_answer.name);
	sources jsonb;
	context text;
	prompt text;
	reply jsonb;
BEGIN
	IF question IS NULL THEN
		RETURN NULL;
	END IF;
	IF max_context_chars IS NULL OR max_context_chars < 1 THEN
		RAISE EXCEPTION 'max_context_chars must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- passages in order while they fit: [n] text, separated by blank lines
	WITH s AS (
		SELECT s.id, s.score, s.payload, s.ord,
			   format('[%s] %s', s.ord, s.payload->>'text') AS passage
		  FROM datacore.rag_search(p.name, question, k, filter) WITH ORDINALITY s(id, score, payload, ord)),
	f AS (
		SELECT s.*, sum(length(s.passage) + 2) OVER (ORDER BY s.ord) - 2 AS upto FROM s)
	SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
				'id', f.id, 'score', f.score, 'row_id', f.payload->'id',
				'chunk', f.payload->'chunk', 'key', f.payload->'key')) ORDER BY f.ord),
		   string_agg(CASE WHEN f.upto > max_context_chars THEN left(f.passage, max_context_chars)
						   ELSE f.passage END, E'\n\n' ORDER BY f.ord)
	  INTO sources, context
	  FROM f
	 WHERE f.upto <= max_context_chars OR f.ord = 1;
	prompt := format(E'Context:\n%s\n\nQ: %s', coalesce(context, '(no passages found)'), question);
	reply := datacore.ollama_generate_json(
		prompt, rag_answer.model,
		'Answer the question using only the numbered context passages, citing them like [1]. '
		'If they do not contain the answer, say that you do not know.',
		NULL, NULL, p.ollama_server);
	RETURN jsonb_build_object('answer', reply->>'response', 'model', reply->>'model',
							  'sources', coalesce(sources, '[]'::jsonb),
							  'prompt_chars', length(prompt), 'eval_count', reply->'eval_count');
END $$;
COMMENT ON FUNCTION rag_answer(text, text, integer, text, jsonb, integer)
	IS 'answer a question from the k nearest chunks of a pipeline: {answer, model, sources, prompt_chars, eval_count}';

-- 0.2.0: the summary chain, summarize and summary_cached (sql/install/65_chain.sql)

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
		redis_server name DEFAULT 'redis', postgrest_errors boolean DEFAULT false)
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
		msg := format('No result is stored for cache key "%s", and ollama server "%s" failed with %s: %s.',
					  cache_key, ollama_server, code, msg)
			   || CASE WHEN job IS NOT NULL THEN format(' A refresh is queued (job %s).', job)
					   ELSE ' No refresh could be queued.' END;
		-- PostgREST sets headers only from a PGRST raise: the same error,
		-- its code PT503 in the body, with Retry-After on the 503
		IF postgrest_errors THEN
			RAISE EXCEPTION USING
				ERRCODE = 'PGRST',
				MESSAGE = jsonb_build_object('code', 'PT503', 'message', 'AI service unavailable',
											 'details', msg,
											 'hint', format('Retry after %s seconds.', retry))::text,
				DETAIL = jsonb_build_object('status', 503,
											'headers', jsonb_build_object('Retry-After', retry::text))::text;
		END IF;
		RAISE EXCEPTION 'AI service unavailable' USING
			ERRCODE = 'PT503',
			DETAIL = msg,
			HINT = format('Retry after %s seconds.', retry);
	END IF;
	RETURN last || jsonb_build_object(
		'cached', true, 'stale', true,
		'message', 'AI service unavailable, showing cached result',
		'stale_reason', format('%s: %s', code, msg),
		'retry_after', retry, 'refresh_job', job);
END $$;
COMMENT ON FUNCTION summarize(jsonb, text, text, interval, text, text, text, integer, jsonb, name, name, name, boolean)
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

-- hot standby: a pipeline change or sync on a standby says to run it on the primary
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
	-- the lock below would refuse too, but without saying where to go
	IF for_update AND pg_is_in_recovery() THEN
		RAISE EXCEPTION 'cannot change or run rag pipeline "%" in a read-only transaction', pipeline
			USING ERRCODE = 'read_only_sql_transaction',
				  DETAIL = 'This server is a hot standby.',
				  HINT = 'Run it on the primary server.';
	END IF;
	SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline;
	-- read again under the lock: only a superuser changes an owner, but it
	-- may have done so meanwhile.  NO KEY UPDATE: the lock must not wait for
	-- writers whose capture triggers are queueing rows (their foreign key
	-- checks hold KEY SHARE on the row until they commit).
	IF FOUND AND for_update AND p.owner = me THEN
		SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline FOR NO KEY UPDATE;
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

-- Qdrant and RAG: upserts from arrays, so that rag_sync sends vectors without a jsonb round trip
CREATE FUNCTION qdrant_upsert(collection text, ids jsonb[], vectors real[], payloads jsonb[] DEFAULT NULL,
	wait boolean DEFAULT true, server name DEFAULT 'qdrant') RETURNS integer
	AS 'MODULE_PATHNAME', 'datacore_qdrant_upsert_arrays' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_upsert(text, jsonb[], real[], jsonb[], boolean, name)
	IS 'insert or replace points given as arrays (vectors: one row per id) in one request';
CREATE OR REPLACE FUNCTION rag_send(p rag_pipelines, ids jsonb[], texts text[], payloads jsonb[],
						 vars jsonb[], gone text[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c_rows integer[];
	c_ids jsonb[];
	c_texts text[];
	c_payloads jsonb[];
	n integer;
	i integer := 1;
	j integer;
	k integer;
	lo integer;
	chars bigint;
	b_idx integer[];
	b_vecs real[];
	-- the chunks embedded (indexes into c_*), their vectors (one row each)
	-- and where each embed request's share of them ends
	a_idx integer[] := '{}';
	a_vecs real[] := '{}';
	a_ends integer[] := '{}';
	f_ids jsonb[];
	vec real[];
	dim_min integer;
	dim_max integer;
	ok integer;
	failed integer[] := '{}';
	f_state text[] := '{}';
	f_text text[] := '{}';
	e_state text;
	e_msg text;
	e_detail text;
	dels text[];
	s_ids text[];
	s_chunks integer[];
BEGIN
	IF p.owner IS DISTINCT FROM quote_ident(current_user)::regrole THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT array_agg(r.ord ORDER BY r.ord, c.n),
		   array_agg(CASE WHEN p.chunker = 'none' THEN r.id
						  ELSE to_jsonb(datacore.rag_point_id(coalesce(p.parent, p.name), r.id #>> '{}', c.n)) END
					 ORDER BY r.ord, c.n),
		   array_agg(CASE WHEN p.template IS NULL THEN c.chunk
						  ELSE datacore.rag_format(p.template, c.chunk, r.vars) END
					 ORDER BY r.ord, c.n),
		   array_agg(r.payload || jsonb_build_object('id', r.id, 'text', c.chunk)
					 || CASE WHEN p.chunker = 'none' THEN '{}'::jsonb
							 ELSE jsonb_build_object('chunk', c.n) END
					 ORDER BY r.ord, c.n)
	  INTO c_rows, c_ids, c_texts, c_payloads
	  FROM unnest(ids, texts, payloads, vars) WITH ORDINALITY r(id, txt, payload, vars, ord)
	  CROSS JOIN LATERAL datacore.rag_chunks(r.txt, p.chunker, p.chunk_size, p.chunk_overlap) c;
	n := coalesce(cardinality(c_texts), 0);

	WHILE i <= n LOOP
		-- a request closes at batch_size texts or before max_batch_chars
		lo := i;
		chars := length(c_texts[i]);
		i := i + 1;
		WHILE i <= n AND i - lo < p.batch_size
			  AND (p.max_batch_chars IS NULL OR chars + length(c_texts[i]) <= p.max_batch_chars) LOOP
			chars := chars + length(c_texts[i]);
			i := i + 1;
		END LOOP;

		BEGIN
			-- the vectors stay real[] up to the upsert: through jsonb every
			-- element would cost a numeric conversion each way
			SELECT array_agg(lo + e.idx - 1 ORDER BY e.idx), array_agg(e.embedding ORDER BY e.idx),
				   min(cardinality(e.embedding)), max(cardinality(e.embedding))
			  INTO b_idx, b_vecs, dim_min, dim_max
			  FROM datacore.ollama_embed(c_texts[lo:i - 1], p.model, p.ollama_server) e;
			IF coalesce(dim_min, 0) = 0 THEN
				RAISE EXCEPTION 'server "%" returned an empty embedding', p.ollama_server
					USING ERRCODE = 'fdw_invalid_string_format';
			END IF;
		EXCEPTION WHEN data_exception OR fdw_invalid_string_format OR program_limit_exceeded THEN
			-- one input may be at fault: embed the texts one by one
			GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
			b_idx := '{}';
			b_vecs := '{}';
			ok := 0;
			dim_min := NULL;
			FOR j IN lo .. i - 1 LOOP
				CONTINUE WHEN c_rows[j] = ANY (failed);
				BEGIN
					vec := datacore.ollama_embed(c_texts[j], p.model, p.ollama_server);
					IF coalesce(cardinality(vec), 0) = 0 THEN
						RAISE EXCEPTION 'server "%" returned an empty embedding', p.ollama_server
							USING ERRCODE = 'fdw_invalid_string_format';
					END IF;
					IF cardinality(vec) <> coalesce(p.dimension, dim_min, cardinality(vec)) THEN
						RAISE EXCEPTION 'embedding has % dimensions, the collection has %',
								cardinality(vec), coalesce(p.dimension, dim_min)
							USING ERRCODE = 'data_exception';
					END IF;
					dim_min := cardinality(vec);
					b_idx := b_idx || j;
					b_vecs := b_vecs || ARRAY[vec];
					ok := ok + 1;
				EXCEPTION WHEN data_exception OR fdw_invalid_string_format OR program_limit_exceeded THEN
					GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
					failed := failed || c_rows[j];
					f_state := f_state || e_state;
					f_text := f_text || CASE WHEN e_detail = '' THEN e_msg ELSE e_msg || ': ' || e_detail END;
				END;
			END LOOP;
			IF ok = 0 AND i - lo > 1 THEN
				RAISE EXCEPTION USING ERRCODE = e_state, MESSAGE = e_msg, DETAIL = e_detail,
					HINT = 'Every text of the request failed on its own too, so the rows were kept queued.';
			END IF;
			dim_max := dim_min;
		END;
		CONTINUE WHEN coalesce(cardinality(b_idx), 0) = 0;

		-- (ollama_embed already refuses replies of mixed sizes)
		IF dim_min <> p.dimension THEN
			RAISE EXCEPTION 'embeddings of rag pipeline "%" have % dimensions, the collection has %',
					p.name, dim_min, p.dimension
				USING ERRCODE = 'data_exception',
					  DETAIL = format('Collection "%s" was created for vectors of %s dimensions.', p.collection, p.dimension),
					  HINT = format('After changing the embedding model, rebuild with: SELECT datacore.rag_reset(%L, drop_collection => true);', p.name);
		END IF;
		IF p.dimension IS NULL THEN
			PERFORM datacore.qdrant_create_collection(p.collection, dim_min, 'Cosine', true,
													  p.qdrant_server);
			p.dimension := dim_min;
			UPDATE datacore.rag_pipelines r SET dimension = dim_min WHERE r.name = p.name;
		END IF;
		a_idx := a_idx || b_idx;
		a_vecs := a_vecs || b_vecs;
		a_ends := a_ends || cardinality(a_idx);
	END LOOP;

	-- one upsert per embed request; a failed row sends none of its chunks:
	-- its old points stay as they were
	SELECT array_agg(ids[f]) INTO f_ids FROM unnest(failed) f;
	lo := 1;
	FOREACH j IN ARRAY a_ends LOOP
		b_idx := a_idx[lo:j];
		b_vecs := a_vecs[lo:j];
		IF f_ids IS NOT NULL THEN
			b_idx := '{}';
			b_vecs := '{}';
			FOR k IN lo .. j LOOP
				CONTINUE WHEN ids[c_rows[a_idx[k]]] = ANY (f_ids);
				b_idx := b_idx || a_idx[k];
				b_vecs := b_vecs || a_vecs[k:k];
			END LOOP;
		END IF;
		lo := j + 1;
		CONTINUE WHEN cardinality(b_idx) = 0;
		PERFORM datacore.qdrant_upsert(p.collection,
									   (SELECT array_agg(c_ids[x] ORDER BY o) FROM unnest(b_idx) WITH ORDINALITY u(x, o)),
									   b_vecs,
									   (SELECT array_agg(c_payloads[x] ORDER BY o) FROM unnest(b_idx) WITH ORDINALITY u(x, o)),
									   true, p.qdrant_server);
	END LOOP;

	-- the points each row (or gone row) no longer has: with chunker none the
	-- row's one point when it has no text; otherwise the chunks from the new
	-- count + 1 up to the count rag_rows remembers
	SELECT array_agg(x.row_id), array_agg(x.chunks) INTO s_ids, s_chunks
	  FROM (SELECT DISTINCT ON (y.row_id) y.row_id, y.chunks
			  FROM (SELECT r.id #>> '{}' AS row_id, coalesce(k.chunks, 0) AS chunks
					  FROM unnest(ids) WITH ORDINALITY r(id, ord)
					  LEFT JOIN (SELECT c, count(*)::integer AS chunks FROM unnest(c_rows) c GROUP BY c) k
						ON k.c = r.ord
					 WHERE r.ord <> ALL (failed)
					UNION ALL
					SELECT g, 0 FROM unnest(gone) g) y
			 ORDER BY y.row_id, y.chunks DESC) x;
	SELECT array_agg(d) INTO dels FROM (
		SELECT s.row_id AS d FROM unnest(s_ids, s_chunks) s(row_id, chunks)
		 WHERE p.chunker = 'none' AND s.chunks = 0
		UNION ALL
		SELECT datacore.rag_point_id(coalesce(p.parent, p.name), s.row_id, g)::text
		  FROM unnest(s_ids, s_chunks) s(row_id, chunks)
		  JOIN datacore.rag_rows r ON r.pipeline = p.name AND r.row_id = s.row_id
		 CROSS JOIN generate_series(s.chunks + 1, r.chunks) g
		 WHERE p.chunker <> 'none') x;
	IF dels IS NOT NULL AND p.dimension IS NOT NULL THEN
		PERFORM datacore.qdrant_delete(p.collection, dels, true, p.qdrant_server);
	END IF;

	INSERT INTO datacore.rag_rows AS r (pipeline, row_id, chunks)
		SELECT p.name, s.row_id, s.chunks FROM unnest(s_ids, s_chunks) s(row_id, chunks) WHERE s.chunks > 0
		ON CONFLICT (pipeline, row_id) DO UPDATE SET chunks = excluded.chunks, synced = excluded.synced;
	DELETE FROM datacore.rag_rows r USING unnest(s_ids, s_chunks) s(row_id, chunks)
	 WHERE r.pipeline = p.name AND r.row_id = s.row_id AND s.chunks = 0;
	DELETE FROM datacore.rag_errors e
	 WHERE e.pipeline = p.name AND e.row_id = ANY (s_ids);
	INSERT INTO datacore.rag_errors AS e (pipeline, row_id, error, sqlstate)
		SELECT DISTINCT ON (ids[f.r] #>> '{}') p.name, ids[f.r] #>> '{}', f.msg, f.state
		  FROM unnest(failed, f_state, f_text) f(r, state, msg)
		 ORDER BY ids[f.r] #>> '{}'
		ON CONFLICT (pipeline, row_id) DO UPDATE
		   SET error = excluded.error, sqlstate = excluded.sqlstate,
			   attempts = e.attempts + 1, at = excluded.at;
	RETURN coalesce(cardinality(s_ids), 0);
END $$;
