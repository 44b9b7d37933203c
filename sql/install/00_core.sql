-- datacore install script: core objects
\echo Use "CREATE EXTENSION datacore" to load this file. \quit

-- One wrapper per service, each with its own handler (the foreign-table
-- callbacks, in src/fdw_*.c) and option validator.  Servers and user
-- mappings are left to the administrator: objects the extension created
-- would be skipped by pg_dump, losing any later ALTER SERVER.
CREATE FUNCTION ollama_fdw_handler() RETURNS fdw_handler
	AS 'MODULE_PATHNAME', 'datacore_ollama_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION qdrant_fdw_handler() RETURNS fdw_handler
	AS 'MODULE_PATHNAME', 'datacore_qdrant_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION s3_fdw_handler() RETURNS fdw_handler
	AS 'MODULE_PATHNAME', 'datacore_s3_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION redis_fdw_handler() RETURNS fdw_handler
	AS 'MODULE_PATHNAME', 'datacore_redis_fdw_handler' LANGUAGE C STRICT;
CREATE FUNCTION ollama_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_ollama_validator' LANGUAGE C STRICT;
CREATE FUNCTION qdrant_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_qdrant_validator' LANGUAGE C STRICT;
CREATE FUNCTION s3_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_s3_validator' LANGUAGE C STRICT;
CREATE FUNCTION redis_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_redis_validator' LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER datacore_ollama
	HANDLER ollama_fdw_handler VALIDATOR ollama_fdw_validator;
CREATE FOREIGN DATA WRAPPER datacore_qdrant
	HANDLER qdrant_fdw_handler VALIDATOR qdrant_fdw_validator;
CREATE FOREIGN DATA WRAPPER datacore_s3
	HANDLER s3_fdw_handler VALIDATOR s3_fdw_validator;
CREATE FOREIGN DATA WRAPPER datacore_redis
	HANDLER redis_fdw_handler VALIDATOR redis_fdw_validator;

CREATE FUNCTION build_info() RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_build_info' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION build_info() IS 'versions of datacore and the libraries it runs with';

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
