
-- Redis: commands as functions, keyspace as foreign tables.  Every function
-- takes the server name last; bytea overloads (key given as bytea) are
-- binary-safe.
CREATE FUNCTION redis_get(key text, server name DEFAULT 'redis') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_redis_get' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_get(key bytea, server name DEFAULT 'redis') RETURNS bytea
	AS 'MODULE_PATHNAME', 'datacore_redis_get_bytea' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_get(text, name) IS 'GET: the value of a string key, NULL when missing';
COMMENT ON FUNCTION redis_get(bytea, name) IS 'GET with a binary key, the value as bytea';

CREATE FUNCTION redis_set(key text, value text, ttl interval DEFAULT NULL,
						  only_if_absent boolean DEFAULT false, server name DEFAULT 'redis')
	RETURNS boolean AS 'MODULE_PATHNAME', 'datacore_redis_set' LANGUAGE C VOLATILE;
CREATE FUNCTION redis_set(key text, value bytea, ttl interval DEFAULT NULL,
						  only_if_absent boolean DEFAULT false, server name DEFAULT 'redis')
	RETURNS boolean AS 'MODULE_PATHNAME', 'datacore_redis_set' LANGUAGE C VOLATILE;
CREATE FUNCTION redis_set(key bytea, value bytea, ttl interval DEFAULT NULL,
						  only_if_absent boolean DEFAULT false, server name DEFAULT 'redis')
	RETURNS boolean AS 'MODULE_PATHNAME', 'datacore_redis_set' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION redis_set(text, text, interval, boolean, name) IS 'SET [PX ttl] [NX]: false when only_if_absent found the key';

CREATE FUNCTION redis_del(keys text[], server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_del' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_del(key text, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_del' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_del(text[], name) IS 'DEL: number of keys removed';

CREATE FUNCTION redis_exists(key text, server name DEFAULT 'redis') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_redis_exists' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_incr(key text, by bigint DEFAULT 1, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_incr' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_incr(text, bigint, name) IS 'INCRBY: the new value';
CREATE FUNCTION redis_expire(key text, ttl interval, server name DEFAULT 'redis') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_redis_expire' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_ttl(key text, server name DEFAULT 'redis') RETURNS interval
	AS 'MODULE_PATHNAME', 'datacore_redis_ttl' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_ttl(text, name) IS 'PTTL: time to live, NULL when missing or persistent';

CREATE FUNCTION redis_lpush(key text, value text, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_lpush' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_lpush(key text, value bytea, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_lpush' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_lpush(key text, elements text[], server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_lpush' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_rpush(key text, value text, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_rpush' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_rpush(key text, value bytea, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_rpush' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_rpush(key text, elements text[], server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_rpush' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_lpop(key text, server name DEFAULT 'redis') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_redis_lpop' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_lpop(key bytea, server name DEFAULT 'redis') RETURNS bytea
	AS 'MODULE_PATHNAME', 'datacore_redis_lpop' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_rpop(key text, server name DEFAULT 'redis') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_redis_rpop' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_rpop(key bytea, server name DEFAULT 'redis') RETURNS bytea
	AS 'MODULE_PATHNAME', 'datacore_redis_rpop' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_blpop(key text, timeout double precision DEFAULT 0,
							server name DEFAULT 'redis') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_redis_blpop' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_blpop(text, double precision, name) IS 'BLPOP: wait up to timeout seconds (0 = until cancelled) for an element';

CREATE FUNCTION redis_hset(key text, field text, value text, server name DEFAULT 'redis') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_redis_hset' LANGUAGE C VOLATILE;
CREATE FUNCTION redis_hset(key text, field text, value bytea, server name DEFAULT 'redis') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_redis_hset' LANGUAGE C VOLATILE;
CREATE FUNCTION redis_hset(key text, fields jsonb, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_hset_jsonb' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_hget(key text, field text, server name DEFAULT 'redis') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_redis_hget' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_hget(key bytea, field bytea, server name DEFAULT 'redis') RETURNS bytea
	AS 'MODULE_PATHNAME', 'datacore_redis_hget' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_hgetall(key text, server name DEFAULT 'redis') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_redis_hgetall' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redis_publish(channel text, message text, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_publish' LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION redis_publish(channel text, message bytea, server name DEFAULT 'redis') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_redis_publish' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redis_command(args text[], server name DEFAULT 'redis') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_redis_command' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_command(text[], name) IS 'any Redis command; the reply as jsonb';
CREATE FUNCTION redis_transaction(commands text[][], server name DEFAULT 'redis') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_redis_transaction' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_transaction(text[], name) IS 'MULTI, one command per row of commands, EXEC in one round trip; the replies as a jsonb array';
