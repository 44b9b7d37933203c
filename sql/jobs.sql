\i test/regress/setup.psql
-- Durable jobs: enqueue checks, who sees and changes which job, the _async
-- forms end to end (the worker runs them after COMMIT), failures, retries.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_jobs_a;
DROP ROLE IF EXISTS regress_jobs_b;
DROP ROLE IF EXISTS regress_jobs_none;
RESET client_min_messages;
CREATE ROLE regress_jobs_a;
CREATE ROLE regress_jobs_b;
CREATE ROLE regress_jobs_none;
GRANT USAGE ON SCHEMA datacore TO regress_jobs_a, regress_jobs_b, regress_jobs_none;
GRANT USAGE ON SCHEMA dc_test TO regress_jobs_a, regress_jobs_b;
GRANT CREATE ON SCHEMA dc_test TO regress_jobs_b;
GRANT USAGE ON FOREIGN SERVER ollama, minio, redis TO regress_jobs_a, regress_jobs_b;
-- each role's own credentials, to see whose mapping a job used
CREATE USER MAPPING FOR regress_jobs_a SERVER ollama OPTIONS (bearer_token 'token-of-a');
CREATE USER MAPPING FOR regress_jobs_b SERVER ollama OPTIONS (bearer_token 'token-of-b');
CREATE FUNCTION dc_test.job_count() RETURNS bigint LANGUAGE sql AS
	$$SELECT count(*) FROM datacore.jobs$$;

-- enqueue rejects what could never run
SELECT datacore.enqueue('ollama_frobnicate', '{}', 'ollama');
SELECT datacore.enqueue('ollama_generate', '{"model": "llama3.2"}', 'ollama');
SELECT datacore.enqueue('ollama_generate', '{"prompt": null}', 'ollama');
SELECT datacore.enqueue('ollama_generate', '["hi"]', 'ollama');
SELECT datacore.enqueue('s3_put', '{"bucket": "b", "key": "k"}', 'minio');
SELECT datacore.enqueue('ollama_generate', '{"prompt": "hi"}', 'ollama', 0);
SELECT datacore.enqueue('ollama_generate', '{"prompt": "hi"}', NULL);
SELECT datacore.enqueue('ollama_generate', '{"prompt": "hi"}', 'no_such_server');
SELECT datacore.enqueue('ollama_generate', '{"prompt": "hi"}', 'minio');
SELECT datacore.s3_put_async('b', 'k', NULL::text);
-- USAGE is checked at enqueue time
SET ROLE regress_jobs_none;
SELECT datacore.ollama_generate_async('hi');
RESET ROLE;
SELECT dc_test.job_count() AS jobs_after_rejects;

-- a rolled-back enqueue leaves nothing behind and sends nothing
BEGIN;
SELECT datacore.ollama_generate_async('rolled back') > 0 AS enqueued;
ROLLBACK;
SELECT dc_test.job_count() AS jobs_after_rollback;

-- a job runs after COMMIT, as the role that enqueued it, with its mapping
SET ROLE regress_jobs_a;
SELECT datacore.ollama_generate_async('from a') AS job_a \gset
SELECT owner, kind, server, args FROM datacore.jobs WHERE id = :job_a;
SELECT datacore.job_wait(:job_a, '10 seconds') AS result;
SELECT state, attempts, result, last_error, finished_at IS NOT NULL AS finished
	FROM datacore.jobs WHERE id = :job_a;
RESET ROLE;
SELECT l->'body'->>'prompt' AS prompt, l->'headers'->>'authorization' AS authorization
	FROM dc_test.log('ollama') l WHERE l->>'path' = '/api/generate';

-- each role sees only its own jobs and can change none directly
SET ROLE regress_jobs_b;
SELECT count(*) AS visible_to_b FROM datacore.jobs;
SELECT datacore.job_wait(:job_a, '0 seconds');
SELECT datacore.retry_job(:job_a);
UPDATE datacore.jobs SET state = 'queued' WHERE id = :job_a;
DELETE FROM datacore.jobs;
INSERT INTO datacore.jobs (kind, server, args, owner)
	VALUES ('ollama_generate', 'ollama', '{"prompt": "forged"}', 'regress_jobs_a');
SELECT datacore.run_jobs(10);
-- inside a SECURITY DEFINER function the job is the function owner's, whose
-- privileges the call has
CREATE FUNCTION dc_test.b_enqueues() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS
	$$SELECT datacore.ollama_embed_async('definer', 'nomic-embed-text')$$;
RESET ROLE;
SET ROLE regress_jobs_a;
SELECT dc_test.b_enqueues() AS job_b \gset
SELECT count(*) AS a_sees_b_job FROM datacore.jobs WHERE id = :job_b;
RESET ROLE;
SELECT owner FROM datacore.jobs WHERE id = :job_b;
SELECT jsonb_array_length(datacore.job_wait(:job_b, '10 seconds')) AS dimension;
DROP FUNCTION dc_test.b_enqueues();

-- a role that lost USAGE before its job ran: dead with 42501, never sent
SELECT dc_test.clear_log('ollama');
BEGIN;
SET LOCAL ROLE regress_jobs_a;
SELECT datacore.ollama_generate_async('after revoke') AS job_revoked \gset
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER ollama FROM regress_jobs_a;
COMMIT;
\set VERBOSITY sqlstate
SELECT datacore.job_wait(:job_revoked, '10 seconds');
\set VERBOSITY default
SELECT state, attempts, last_error->>'sqlstate' AS sqlstate, last_error->>'message' AS message
	FROM datacore.jobs WHERE id = :job_revoked;
SELECT count(*) AS requests_sent FROM dc_test.log('ollama');
GRANT USAGE ON FOREIGN SERVER ollama TO regress_jobs_a;

-- the other async forms
SELECT dc_test.s3_drop_bucket('regress-jobs');
SELECT datacore.s3_create_bucket('regress-jobs');
SELECT datacore.s3_put_async('regress-jobs', 'a.txt', 'text body') AS j1,
	   datacore.s3_put_async('regress-jobs', 'b.bin', '\x00ff00'::bytea) AS j2,
	   datacore.s3_put_async('regress-jobs', 'c.json', '{"n": 1}'::jsonb) AS j3,
	   datacore.redis_set_async('regress:jobs:k', 'v', '1 minute') AS j4,
	   datacore.redis_set_async('regress:jobs:b', '\x0102'::bytea) AS j5 \gset
SELECT jsonb_typeof(datacore.job_wait(:j1, '10 seconds')) AS etag,
	   jsonb_typeof(datacore.job_wait(:j2, '10 seconds')) AS etag,
	   jsonb_typeof(datacore.job_wait(:j3, '10 seconds')) AS etag,
	   datacore.job_wait(:j4, '10 seconds') AS set,
	   datacore.job_wait(:j5, '10 seconds') AS set;
SELECT key, size FROM datacore.s3_list('regress-jobs') ORDER BY key;
SELECT convert_from(datacore.s3_get('regress-jobs', 'c.json'), 'UTF8') AS c_json,
	   datacore.s3_get('regress-jobs', 'b.bin') AS b_bin;
SELECT datacore.redis_get('regress:jobs:k') AS k, datacore.redis_ttl('regress:jobs:k') > interval '0' AS has_ttl,
	   datacore.redis_get('regress:jobs:b'::bytea) AS b;
SELECT datacore.redis_del('regress:jobs:k') + datacore.redis_del('regress:jobs:b') AS deleted;
SELECT dc_test.s3_drop_bucket('regress-jobs');
SELECT datacore.qdrant_create_collection('regress_jobs', 3);
SELECT datacore.qdrant_upsert_async('regress_jobs', 7, '{1,0,0}', '{"n": 7}') AS q1,
	   datacore.qdrant_upsert_async('regress_jobs', '6f1c6c4e-2c43-4a53-9a57-0d4b0a4c6a01'::uuid,
									'{0,1,0}') AS q2,
	   datacore.qdrant_upsert_async('regress_jobs',
			'[{"id": 8, "vector": [0, 0, 1]}, {"id": 9, "vector": [1, 1, 0]}]'::jsonb) AS q3 \gset
SELECT datacore.job_wait(:q1, '10 seconds') AS id, datacore.job_wait(:q2, '10 seconds') AS id,
	   datacore.job_wait(:q3, '10 seconds') AS points;
SELECT id, payload FROM datacore.qdrant_get('regress_jobs', ARRAY[7, 8, 9]::bigint[]) ORDER BY id;
SELECT datacore.qdrant_drop_collection('regress_jobs');

-- a request the server rejects fails at once, keeping its error
SELECT datacore.ollama_generate_async('hi', 'no-such-model') AS job_bad \gset
SELECT datacore.job_wait(:job_bad, '10 seconds');
SELECT state, attempts, last_error->>'sqlstate' AS sqlstate FROM datacore.jobs WHERE id = :job_bad;
-- retry_job queues it again (it fails again); only failed or dead jobs
SELECT datacore.retry_job(:job_bad);
SELECT datacore.job_wait(:job_bad, '10 seconds');
SELECT state, attempts FROM datacore.jobs WHERE id = :job_bad;
SELECT datacore.retry_job(:job_a);
SELECT datacore.retry_job(-1);

-- transient failures (HTTP 503) are retried; after max_attempts the job is
-- dead with its last error
SELECT dc_test.clear_log('ollama');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "retry_after": 0, "path": "/api/generate"}');
SELECT datacore.enqueue('ollama_generate', '{"prompt": "flaky"}', 'ollama', max_attempts => 3) AS job_dead \gset
\set VERBOSITY sqlstate
SELECT datacore.job_wait(:job_dead, '20 seconds');
\set VERBOSITY default
SELECT state, attempts, last_error->>'sqlstate' AS sqlstate, last_error->>'message' AS message,
	   last_error->'attempt' AS attempt
	FROM datacore.jobs WHERE id = :job_dead;
SELECT count(*) AS requests FROM dc_test.log('ollama');
SELECT dc_test.fault('ollama', NULL);
SELECT datacore.retry_job(:job_dead);
SELECT datacore.job_wait(:job_dead, '10 seconds') AS result;
SELECT state, attempts, last_error->'attempt' AS last_failed_attempt FROM datacore.jobs WHERE id = :job_dead;
-- a 429's Retry-After (2 s) is waited out: backoff alone would retry sooner
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 429, "retry_after": 2, "times": 1, "path": "/api/generate"}');
SELECT datacore.ollama_generate_async('retry after') AS job_ra \gset
SELECT datacore.job_wait(:job_ra, '20 seconds') AS result;
SELECT attempts, finished_at - created_at >= interval '2 seconds' AS waited_for_retry_after,
	   last_error->>'message' AS first_error
	FROM datacore.jobs WHERE id = :job_ra;

-- job_wait: not in the enqueuing transaction, not under REPEATABLE READ,
-- NULL when the job is not done in time
BEGIN;
SELECT datacore.ollama_generate_async('same transaction') AS job_same \gset
SELECT datacore.job_wait(:job_same, '1 second');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT datacore.job_wait(:job_a, '1 second');
ROLLBACK;
SELECT datacore.enqueue('ollama_generate', '{"prompt": "later"}', 'ollama',
						run_after => now() + interval '1 hour') AS job_later \gset
SELECT datacore.job_wait(:job_later, '50 milliseconds') IS NULL AS still_pending;
SELECT state FROM datacore.jobs WHERE id = :job_later;

-- finished jobs are deleted datacore.job_retention after they finished
-- (by the worker, and by run_jobs); queued ones stay
SELECT state, count(*) FROM datacore.jobs GROUP BY 1 ORDER BY 1;
SET datacore.job_retention = 0;
SELECT datacore.run_jobs(1) AS ran;
RESET datacore.job_retention;
SELECT state, count(*) FROM datacore.jobs GROUP BY 1 ORDER BY 1;

-- run_jobs is for the superuser (pg_cron) only; async calls need no worker
-- privileges
SET ROLE regress_jobs_a;
SELECT datacore.run_jobs();
RESET ROLE;
SELECT datacore.run_jobs(0);

-- the queue is in pg_dump output (user data)
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'datacore';

DELETE FROM datacore.jobs;
DROP FUNCTION dc_test.job_count();
DROP USER MAPPING FOR regress_jobs_a SERVER ollama;
DROP USER MAPPING FOR regress_jobs_b SERVER ollama;
REVOKE ALL ON FOREIGN SERVER ollama, minio, redis FROM regress_jobs_a, regress_jobs_b;
REVOKE ALL ON SCHEMA dc_test FROM regress_jobs_a, regress_jobs_b;
REVOKE ALL ON SCHEMA datacore FROM regress_jobs_a, regress_jobs_b, regress_jobs_none;
DROP ROLE regress_jobs_a, regress_jobs_b, regress_jobs_none;
\i test/regress/teardown.psql
