-- datacore install script: core objects
\echo Use "CREATE EXTENSION datacore" to load this file. \quit

-- One wrapper per service, each with its own option validator.  Servers and
-- user mappings are left to the administrator: objects the extension
-- created would be skipped by pg_dump, losing any later ALTER SERVER.
CREATE FUNCTION ollama_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_ollama_validator' LANGUAGE C STRICT;
CREATE FUNCTION qdrant_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_qdrant_validator' LANGUAGE C STRICT;
CREATE FUNCTION s3_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_s3_validator' LANGUAGE C STRICT;
CREATE FUNCTION redis_fdw_validator(text[], oid) RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_redis_validator' LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER datacore_ollama VALIDATOR ollama_fdw_validator;
CREATE FOREIGN DATA WRAPPER datacore_qdrant VALIDATOR qdrant_fdw_validator;
CREATE FOREIGN DATA WRAPPER datacore_s3 VALIDATOR s3_fdw_validator;
CREATE FOREIGN DATA WRAPPER datacore_redis VALIDATOR redis_fdw_validator;

CREATE FUNCTION build_info() RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_build_info' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION build_info() IS 'versions of datacore and the libraries it runs with';

CREATE FUNCTION breaker_status(OUT server text, OUT failures int, OUT open_until timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'datacore_breaker_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION breaker_status() IS 'servers of this database with consecutive failures on record, and until when calls to them fail fast';

-- Ollama
CREATE FUNCTION ollama_version(server name DEFAULT 'ollama') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_ollama_version' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION ollama_version(name) IS 'version string of the Ollama server';
