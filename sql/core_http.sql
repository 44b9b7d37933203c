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
-- the circuit breaker: after breaker_threshold consecutive failures calls
-- fail at once, without a request, until the cooldown has passed
ALTER SERVER ollama OPTIONS (ADD breaker_threshold '2', ADD breaker_cooldown_ms '1500');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503}');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_version();
SELECT datacore.ollama_version();
SELECT datacore.ollama_version();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS requests_sent FROM dc_test.log('ollama');
SELECT server, failures, open_until > now() AS open FROM datacore.breaker_status();
SELECT dc_test.fault('ollama', NULL);
SELECT pg_sleep(1.6);
SELECT datacore.ollama_version();
SELECT count(*) AS servers_with_failures FROM datacore.breaker_status();
ALTER SERVER ollama OPTIONS (SET breaker_threshold '0');

\i test/regress/teardown.psql
