-- datacore 0.1.0 -> 0.2.0
--
-- Each change to sql/install/ since 0.1.0 appears here as well, in the same
-- order; test/t/upgrade.sh checks that an updated 0.1.0 installation matches a
-- fresh 0.2.0 one object by object.

\echo Use "ALTER EXTENSION datacore UPDATE TO '0.2.0'" to load this file. \quit

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
