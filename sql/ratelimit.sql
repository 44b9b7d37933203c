-- rate_limit() / rate_limit_check(): a sliding window kept in Redis.  At
-- most N calls are allowed in ANY window of the given length, also across
-- a clock boundary where a fixed per-window counter would let 2N through.
\i test/regress/setup.psql
\set SHOW_CONTEXT never

SELECT datacore.redis_del('datacore:ratelimit:regress:a');

-- Five calls in the last 0.4 s before a second boundary are allowed, and
-- the sixth is not.
SELECT pg_sleep(1.6 - extract(epoch FROM clock_timestamp()) % 1);
SELECT array_agg(datacore.rate_limit('regress:a', 5, window_size => '1 second'))
	FROM generate_series(1, 6);
-- Right after the boundary a fixed window would start counting from zero;
-- the sliding window still sees those five calls.
SELECT pg_sleep(1.05 - extract(epoch FROM clock_timestamp()) % 1);
SELECT array_agg(datacore.rate_limit('regress:a', 5, window_size => '1 second'))
	FROM generate_series(1, 5);
-- A window after the first calls they have expired: five more, no sixth.
SELECT pg_sleep(1.85 - extract(epoch FROM clock_timestamp()) % 1);
SELECT array_agg(datacore.rate_limit('regress:a', 5, window_size => '1 second'))
	FROM generate_series(1, 6);
-- what Redis holds: the calls of one window, expiring with it
SELECT datacore.redis_command('{ZCARD,datacore:ratelimit:regress:a}');
SELECT (datacore.redis_command('{PTTL,datacore:ratelimit:regress:a}')::text)::int
	BETWEEN 1 AND 1001 AS expires;

-- rate_limit_check: the error PostgREST turns into HTTP 429 + Retry-After
SELECT datacore.rate_limit_check('regress:b', 1, window_size => '30 seconds');
SELECT datacore.rate_limit_check('regress:b', 1, window_size => '30 seconds');
\echo :LAST_ERROR_SQLSTATE
DO $$
DECLARE
	msg text;
	detail text;
BEGIN
	PERFORM datacore.rate_limit_check('regress:b', 1, window_size => '30 seconds');
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'code %, HTTP status %, Retry-After between 29 and 30: %',
		msg::jsonb->>'code', detail::jsonb->>'status',
		(detail::jsonb->'headers'->>'Retry-After')::int BETWEEN 29 AND 30;
END $$;
-- a PostgREST GET runs READ ONLY: the limiter still works there
BEGIN READ ONLY;
SELECT datacore.rate_limit('regress:ro', 1), datacore.rate_limit('regress:ro', 1);
COMMIT;
SELECT datacore.redis_del('datacore:ratelimit:regress:a');
SELECT datacore.redis_del('datacore:ratelimit:regress:b');
SELECT datacore.redis_del('datacore:ratelimit:regress:ro');

-- arguments
SELECT datacore.rate_limit('regress:c', 0);
SELECT datacore.rate_limit('regress:c', 5, window_size => '1 month');
SELECT datacore.rate_limit('regress:c', 5, window_size => '0 seconds');
SELECT datacore.rate_limit(NULL, 5);

-- Redis down: fail closed (the default) refuses, fail open lets through;
-- both warn.  rate_limit_check answers 503 then.
CREATE SERVER regress_rl_down FOREIGN DATA WRAPPER datacore_redis
	OPTIONS (host '127.0.0.1', port '1');
SELECT datacore.rate_limit('regress:d', 5, 'regress_rl_down');
SELECT datacore.rate_limit('regress:d', 5, 'regress_rl_down', fail_open => true);
SELECT datacore.rate_limit_check('regress:d', 5, 'regress_rl_down');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.rate_limit_check('regress:d', 5, 'regress_rl_down', fail_open => true);
-- once the breaker has opened on those failures, the 503 says when Redis
-- is tried next
SELECT datacore.rate_limit('regress:d', 5, 'regress_rl_down');
SELECT datacore.rate_limit_check('regress:d', 5, 'regress_rl_down');
-- other errors are not an outage: without a user mapping Redis refuses
\set ECHO none
SELECT format('CREATE SERVER regress_rl_noauth FOREIGN DATA WRAPPER datacore_redis OPTIONS (host %L, port %L)',
			  '127.0.0.1', port) FROM dc_test.ports WHERE service = 'redis' \gexec
\set ECHO all
SELECT datacore.rate_limit('regress:d', 5, 'regress_rl_noauth', fail_open => true);
\echo :LAST_ERROR_SQLSTATE
DROP SERVER regress_rl_down, regress_rl_noauth;
\i test/regress/teardown.psql
