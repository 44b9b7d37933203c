
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
