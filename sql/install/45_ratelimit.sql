-- Rate limits kept in Redis (src/ratelimit.c): a sliding window, at most
-- per_minute calls in any window_size, checked and counted atomically.
-- The server stays the third argument, as in every other Redis function's
-- contract; the window and the outage behaviour follow, for named notation.
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
