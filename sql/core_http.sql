-- The HTTP core: failures map to SQLSTATEs, every wait ends on time, every
-- response is size-capped.  Exercised through ollama_version().
\i test/regress/setup.psql
\set SHOW_CONTEXT never

-- connection refused
CREATE SERVER regress_down FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1');
SELECT datacore.ollama_version('regress_down');
\echo :LAST_ERROR_SQLSTATE
DROP SERVER regress_down;

-- a hung server: statement_timeout ends the call well within a second
SELECT dc_test.fault('ollama', '{"mode": "hang"}');
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '300ms';
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '1 second' AS ended_promptly;

-- the server's own timeout_ms, without statement_timeout
ALTER SERVER ollama OPTIONS (ADD timeout_ms '300');
SELECT clock_timestamp() AS t0 \gset
\set VERBOSITY terse
SELECT datacore.ollama_version();
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT clock_timestamp() - :'t0'::timestamptz < interval '1 second' AS ended_promptly;
ALTER SERVER ollama OPTIONS (DROP timeout_ms);
SELECT dc_test.fault('ollama', NULL);

-- the backend is usable afterwards, on a fresh or reused connection
SELECT datacore.ollama_version();

-- the size cap
SELECT dc_test.fault('ollama', '{"mode": "oversize", "bytes": 300000}');
ALTER SERVER ollama OPTIONS (ADD max_response_bytes '100000');
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER ollama OPTIONS (DROP max_response_bytes);
SELECT dc_test.fault('ollama', NULL);

-- a connection dropped without an answer, and a truncated body
SELECT dc_test.fault('ollama', '{"mode": "drop"}');
\set VERBOSITY terse
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "truncate"}');
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- malformed JSON
SELECT dc_test.fault('ollama', '{"mode": "malformed"}');
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE

-- HTTP errors carry the status and the remote text
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500}');
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE

-- 503 with Retry-After is retried when the server allows retries
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "retry_after": 0, "times": 1}');
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "retry_after": 0, "times": 1}');
ALTER SERVER ollama OPTIONS (ADD retries '2');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_version();
SELECT count(*) AS attempts FROM dc_test.log('ollama');
ALTER SERVER ollama OPTIONS (DROP retries);
SELECT dc_test.fault('ollama', NULL);

-- an error inside a subtransaction leaves nothing behind for the next call
DO $$
BEGIN
	PERFORM dc_test.fault('ollama', '{"mode": "hang"}');
	BEGIN
		ALTER SERVER ollama OPTIONS (ADD timeout_ms '200');
		PERFORM datacore.ollama_version();
	EXCEPTION WHEN connection_exception THEN
		RAISE NOTICE 'timed out inside the block';
	END;
	PERFORM dc_test.fault('ollama', NULL);
	RAISE NOTICE 'then: %', datacore.ollama_version();
END $$;
-- the circuit breaker: after breaker_threshold consecutive failed calls
-- calls fail at once, without a request, until the cooldown has passed;
-- then one call probes.  An HTTP 500 counts (a crashed model runner
-- answers so); a 404 the request caused does not.
ALTER SERVER ollama OPTIONS (ADD breaker_threshold '2', ADD breaker_cooldown_ms '1500');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('x', model => 'no-such-model');
SELECT datacore.ollama_generate('x', model => 'no-such-model');
SELECT datacore.ollama_generate('x', model => 'no-such-model');
SELECT count(*) AS requests_sent FROM dc_test.log('ollama');
SELECT count(*) AS breakers FROM datacore.breakers;
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500}');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_version();
SELECT datacore.ollama_version();
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS requests_sent FROM dc_test.log('ollama');
SELECT server, state, failures, opened_at <= now() AS opened,
	   next_probe_at - opened_at AS cooldown FROM datacore.breakers;
-- half-open after the cooldown: the probe fails, the breaker reopens
SELECT pg_sleep(1.6);
SELECT server, state FROM datacore.breakers;
SELECT datacore.ollama_version();
SELECT datacore.ollama_version();
SELECT count(*) AS requests_sent FROM dc_test.log('ollama');
SELECT state, failures, next_probe_at > now() + interval '1 second' AS new_cooldown
	FROM datacore.breakers;
-- a probe abandoned by statement_timeout counts as failed: the breaker is
-- open again (not half-open for the probe's whole lease)
SELECT dc_test.fault('ollama', '{"mode": "hang"}');
SELECT pg_sleep(1.6);
SET statement_timeout = '300ms';
SELECT datacore.ollama_version();
RESET statement_timeout;
SELECT state, failures, next_probe_at > now() + interval '1 second' AS new_cooldown
	FROM datacore.breakers;
-- the server is back: the probe succeeds and closes the breaker
SELECT dc_test.fault('ollama', NULL);
SELECT pg_sleep(1.6);
SELECT datacore.ollama_version();
SELECT count(*) AS breakers FROM datacore.breakers;
SELECT datacore.ollama_version();
-- a call counts once, however many retries it made
ALTER SERVER ollama OPTIONS (ADD retries '2');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "retry_after": 0}');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_version();
SELECT count(*) AS attempts FROM dc_test.log('ollama');
SELECT state, failures FROM datacore.breakers;
SELECT dc_test.fault('ollama', NULL);
SELECT datacore.ollama_version();
ALTER SERVER ollama OPTIONS (DROP retries, SET breaker_threshold '0');

\i test/regress/teardown.psql
