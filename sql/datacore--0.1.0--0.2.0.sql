-- datacore 0.1.0 -> 0.2.0
--
-- Each change to sql/install/ since 0.1.0 appears here as well, in the same
-- order; test/t/upgrade.sh checks that an updated 0.1.0 installation matches a
-- fresh 0.2.0 one object by object.

\echo Use "ALTER EXTENSION datacore UPDATE TO '0.2.0'" to load this file. \quit

-- Redis: redis_transaction (MULTI ... EXEC in one round trip)
CREATE FUNCTION redis_transaction(commands text[][], server name DEFAULT 'redis') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_redis_transaction' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_transaction(text[], name) IS 'MULTI, one command per row of commands, EXEC in one round trip; the replies as a jsonb array';
