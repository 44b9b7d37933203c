\i test/regress/setup.psql
-- Metrics: counters per (database, server, operation) in shared memory, the
-- datacore.metrics view, the Prometheus exposition and who may read them.
SELECT datacore.reset_metrics();
SELECT entries, overflow, shared FROM datacore.metrics_info();

-- Rows of this database, without what varies from run to run (timings and
-- byte counts are checked for plausibility instead).
CREATE FUNCTION dc_test.metrics() RETURNS TABLE (server text, operation text, requests bigint,
		errors bigint, errors_by_class jsonb, retries bigint, bytes_ok boolean, latency_ok boolean,
		prompt_tokens bigint, eval_tokens bigint, breaker_state text)
LANGUAGE sql AS $$
	SELECT server, operation, requests, errors, errors_by_class, retries,
		   bytes_sent > 0 AND bytes_received > 0,
		   latency_buckets[array_length(latency_buckets, 1)] = latency_count
			 AND latency_sum >= 0 AND latency_le[array_length(latency_le, 1)] = 'Infinity',
		   prompt_tokens, eval_tokens, breaker_state
	  FROM datacore.metrics
	 WHERE database = current_database()
	 ORDER BY server, operation
$$;
-- The exposition's sample lines for this database and one metric family.
CREATE FUNCTION dc_test.samples(family text) RETURNS TABLE (line text)
LANGUAGE sql AS $$
	SELECT replace(line, current_database(), 'DB')
	  FROM regexp_split_to_table(datacore.metrics_prometheus(), E'\n') line
	 WHERE split_part(split_part(line, '{', 1), ' ', 1) = family
	   AND line LIKE '%database="' || current_database() || '"%'
	 ORDER BY line
$$;

-- successes: Ollama reports its token counts (the stand-in: one per word)
SELECT datacore.ollama_generate('one two three');
SELECT datacore.ollama_generate('four five');
SELECT (datacore.ollama_chat('[{"role": "user", "content": "hi there"}]')) ->> 'content';
SELECT array_length(datacore.ollama_embed('text'), 1);
SELECT datacore.redis_set('regress_metrics:k', 'v');
SELECT datacore.redis_get('regress_metrics:k');
-- errors, by SQLSTATE class (only the SQLSTATE is shown: the messages are
-- the services' own): unknown model 404 (42), injected 500 (HV), Redis
-- error replies WRONGTYPE (42) and ERR (HV)
\set VERBOSITY sqlstate
SELECT datacore.ollama_generate('x', model => 'no-such-model');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500, "times": 1}');
SELECT datacore.ollama_generate('x');
SELECT datacore.redis_lpush('regress_metrics:k', 'x');
SELECT datacore.redis_incr('regress_metrics:k');
\set VERBOSITY default
SELECT datacore.redis_del('regress_metrics:k');
-- a retry after a 503: two requests, one retry, one error of class 08
ALTER SERVER ollama OPTIONS (ADD retries '1');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "times": 1}');
SELECT datacore.ollama_version();
ALTER SERVER ollama OPTIONS (DROP retries);
SELECT * FROM dc_test.metrics();

-- a server that refuses connections: class 08; once its breaker is open
-- calls fail fast without a request, and the breaker state shows
CREATE SERVER regress_metrics_down FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', breaker_threshold '1', breaker_cooldown_ms '600000');
\set VERBOSITY sqlstate
SELECT datacore.ollama_version('regress_metrics_down');
SELECT datacore.ollama_version('regress_metrics_down');
\set VERBOSITY default
SELECT server, requests, errors_by_class, breaker_state
  FROM dc_test.metrics() WHERE server = 'regress_metrics_down';
SELECT * FROM dc_test.samples('datacore_breaker_open');

-- the exposition: counters, the histogram of one key, label escaping
SELECT * FROM dc_test.samples('datacore_requests_total');
SELECT * FROM dc_test.samples('datacore_errors_total');
SELECT * FROM dc_test.samples('datacore_retries_total') WHERE line NOT LIKE '% 0';
SELECT * FROM dc_test.samples('datacore_ollama_eval_tokens_total');
SELECT regexp_replace(line, '_sum\{(.*)\} .*', '_sum{\1} (sum)') AS line
  FROM dc_test.samples('datacore_request_duration_seconds_bucket') line
 WHERE line LIKE '%operation="redis_get"%'
UNION ALL
SELECT regexp_replace(line, '\} .*', '} (sum)')
  FROM dc_test.samples('datacore_request_duration_seconds_sum') line
 WHERE line LIKE '%operation="redis_get"%'
UNION ALL
SELECT line FROM dc_test.samples('datacore_request_duration_seconds_count') line
 WHERE line LIKE '%operation="redis_get"%';
CREATE SERVER "regress ""odd"" \name" FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1');
\set VERBOSITY sqlstate
SELECT datacore.ollama_version(E'regress "odd" \\name');
\set VERBOSITY default
SELECT * FROM dc_test.samples('datacore_requests_total') WHERE line LIKE '%odd%';
-- every family has HELP and TYPE, counters end in _total, nothing secret
SELECT line FROM regexp_split_to_table(datacore.metrics_prometheus(), E'\n') line
 WHERE line LIKE '# TYPE %' ORDER BY line;
SELECT count(*) AS secrets FROM regexp_split_to_table(datacore.metrics_prometheus(), E'\n') line
 WHERE line LIKE '%' || (SELECT value FROM dc_test.secrets WHERE name = 'redis_password') || '%'
	OR line LIKE '%127.0.0.1%';

-- jobs by state, from datacore.jobs once that table exists: all five
-- states, nothing before (a stand-in table here when the real one is absent)
SELECT to_regclass('datacore.jobs') IS NOT NULL
	OR NOT EXISTS (SELECT FROM datacore.metrics_jobs()) AS no_jobs_without_table;
BEGIN;
DO $$
BEGIN
	IF to_regclass('datacore.jobs') IS NULL THEN
		CREATE TABLE datacore.jobs (id int, state text);
		INSERT INTO datacore.jobs VALUES (1, 'queued'), (2, 'queued'), (3, 'dead');
	END IF;
END $$;
SELECT count(*) AS states, sum(jobs) = (SELECT count(*) FROM datacore.jobs) AS counted
  FROM datacore.metrics_jobs();
SELECT count(*) AS job_samples FROM dc_test.samples('datacore_jobs_by_state');
ROLLBACK;

-- a transfer abandoned while its transaction aborts (statement_timeout on a
-- hung request) right after a reset is not counted, and its key is counted
-- normally from the next request on
SELECT datacore.ollama_version();
SELECT datacore.reset_metrics();
SELECT dc_test.fault('ollama', '{"mode": "hang", "times": 1}');
SET statement_timeout = '300ms';
\set VERBOSITY sqlstate
SELECT datacore.ollama_version();
\set VERBOSITY default
RESET statement_timeout;
SELECT datacore.ollama_version();
SELECT server, operation, requests, errors FROM dc_test.metrics();
SELECT entries, overflow FROM datacore.metrics_info();

-- who may read: pg_monitor members; reset: superusers and whom they grant
CREATE ROLE regress_metrics_plain;
CREATE ROLE regress_metrics_monitor IN ROLE pg_monitor;
-- (the schema itself is the administrator's to open, as for every role)
GRANT USAGE ON SCHEMA datacore TO regress_metrics_plain, regress_metrics_monitor;
SET ROLE regress_metrics_plain;
SELECT count(*) FROM datacore.metrics;
SELECT datacore.metrics_prometheus();
SELECT datacore.reset_metrics();
RESET ROLE;
SET ROLE regress_metrics_monitor;
SELECT count(*) > 0 AS monitor_reads FROM datacore.metrics;
SELECT length(datacore.metrics_prometheus()) > 0 AS monitor_scrapes;
SELECT datacore.reset_metrics();
RESET ROLE;
GRANT EXECUTE ON FUNCTION datacore.reset_metrics() TO regress_metrics_monitor;
SET ROLE regress_metrics_monitor;
SELECT datacore.reset_metrics();
RESET ROLE;
SELECT count(*) AS rows_after_reset FROM datacore.metrics;
SELECT entries, overflow FROM datacore.metrics_info();

REVOKE EXECUTE ON FUNCTION datacore.reset_metrics() FROM regress_metrics_monitor;
REVOKE USAGE ON SCHEMA datacore FROM regress_metrics_plain, regress_metrics_monitor;
DROP ROLE regress_metrics_plain, regress_metrics_monitor;
DROP SERVER regress_metrics_down, "regress ""odd"" \name";
\i test/regress/teardown.psql
