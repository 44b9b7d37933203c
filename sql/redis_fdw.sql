-- datacore_redis foreign tables against the stack's redis-server.
\i test/regress/setup.psql
SET search_path = datacore, public;

-- A server on which a superuser allowed every command, for the bookkeeping
-- below (INFO, CONFIG RESETSTAT); the same Redis and ACL user as "redis".
SELECT format('CREATE SERVER regress_redis_admin FOREIGN DATA WRAPPER datacore_redis OPTIONS (host %L, port %L, allow_dangerous_commands %L)',
			  '127.0.0.1', port, 'true') FROM dc_test.ports WHERE service = 'redis' \gexec
SELECT format('CREATE USER MAPPING FOR PUBLIC SERVER regress_redis_admin OPTIONS (user %L, password %L)',
			  u.value, p.value) FROM dc_test.secrets u, dc_test.secrets p
 WHERE u.name = 'redis_user' AND p.name = 'redis_password' \gexec

-- Which commands reached Redis since the last reset (INFO commandstats),
-- leaving out the bookkeeping commands themselves.
CREATE FUNCTION redis_calls() RETURNS TABLE (command text, calls bigint)
LANGUAGE sql AS $$
	SELECT m[1], m[2]::bigint
	FROM regexp_matches(datacore.redis_command('{INFO,commandstats}', 'regress_redis_admin') #>> '{}',
						'cmdstat_(\w+):calls=(\d+)', 'g') AS m
	WHERE m[1] <> 'info'
	ORDER BY 1
$$;

-- options and columns are checked
CREATE FOREIGN TABLE regress_bad (key text) SERVER redis OPTIONS (table_type 'stream');
CREATE FOREIGN TABLE regress_bad (key text) SERVER redis OPTIONS (key_prefx 'x');
CREATE FOREIGN TABLE regress_bad (key text) SERVER redis OPTIONS (scan_count '0');
CREATE FOREIGN TABLE regress_bad (k text, value text) SERVER redis;
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;
CREATE FOREIGN TABLE regress_bad (key text, val text) SERVER redis;
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;
CREATE FOREIGN TABLE regress_bad (key text, ttl int) SERVER redis;
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;
CREATE FOREIGN TABLE regress_bad (key text, value text) SERVER redis OPTIONS (table_type 'hash');
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;
CREATE FOREIGN TABLE regress_bad (key text, value text) SERVER redis OPTIONS (table_type 'set');
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;

-- ------------------------------------------------------------------ strings
SELECT redis_set('regress:t:a', 'A'), redis_set('regress:t:b', 'B', '1 hour'),
       redis_set('regress:t:c', 'C'), redis_hset('regress:t:h', 'f', 'v'),
       redis_set('regress:other', 'not in the table');
CREATE FOREIGN TABLE regress_str (key text, value text, ttl interval)
  SERVER redis OPTIONS (table_type 'string', key_prefix 'regress:t:');

-- a full scan walks the keyspace with SCAN, reading values in pipelined batches;
-- the hash under the same prefix is skipped by SCAN's TYPE filter
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT key, value, ttl BETWEEN '59 min' AND '1 hour' AS ttl_hour FROM regress_str ORDER BY key;
SELECT * FROM redis_calls();

-- key = constant: one GET (and PTTL), no SCAN
EXPLAIN (COSTS OFF) SELECT * FROM regress_str WHERE key = 'a';
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT key, value FROM regress_str WHERE key = 'a';
SELECT * FROM redis_calls();

-- key = ANY(array): only those keys, values only when needed
EXPLAIN (COSTS OFF) SELECT key, value FROM regress_str WHERE key = ANY ('{a,c,missing}');
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT key, value FROM regress_str WHERE key = ANY ('{a,c,missing}') ORDER BY key;
SELECT * FROM redis_calls();
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT key FROM regress_str WHERE key IN ('b', 'missing');
SELECT * FROM redis_calls();

-- key LIKE 'prefix%': SCAN MATCH narrows to the prefix
EXPLAIN (COSTS OFF) SELECT * FROM regress_str WHERE key LIKE 'b%';
SELECT key, value FROM regress_str WHERE key LIKE 'b%';
-- wildcards in the key prefix and the pattern are escaped for SCAN's glob
EXPLAIN (COSTS OFF) SELECT key FROM regress_str WHERE key LIKE 'x*\_y%';

-- equality under a case-insensitive collation is not an exact key: no lookup
CREATE COLLATION regress_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
EXPLAIN (COSTS OFF) SELECT key FROM regress_str WHERE key = 'A' COLLATE regress_ci;
SELECT key, value FROM regress_str WHERE key = 'A' COLLATE regress_ci;
DROP COLLATION regress_ci;

-- count(*) needs only the keys: no GET at all
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT count(*) FROM regress_str;
SELECT * FROM redis_calls();

-- parameters are pushed down too (generic plan)
SET plan_cache_mode = force_generic_plan;
PREPARE by_key(text) AS SELECT key, value FROM regress_str WHERE key = $1;
EXPLAIN (COSTS OFF) EXECUTE by_key('b');
EXECUTE by_key('b');
EXECUTE by_key('c');
DEALLOCATE by_key;
RESET plan_cache_mode;

-- a key of another type, named explicitly, is a WRONGTYPE error
SELECT * FROM regress_str WHERE key = 'h';
SELECT key FROM regress_str WHERE key = 'h';

-- writes
INSERT INTO regress_str VALUES ('d', 'D', '10 minutes') RETURNING key, value;
INSERT INTO regress_str (key, value) VALUES ('d', 'D again');
INSERT INTO regress_str (key, value) VALUES ('e', NULL);
UPDATE regress_str SET value = 'A2' WHERE key = 'a' RETURNING key, value, ttl;
UPDATE regress_str SET value = value || '!' WHERE key LIKE 'd%' RETURNING key, value, ttl > '9 minutes' AS ttl_kept;
UPDATE regress_str SET key = 'c2' WHERE key = 'c';
UPDATE regress_str SET key = 'a' WHERE key = 'b';
UPDATE regress_str SET ttl = NULL WHERE key = 'b';
UPDATE regress_str SET ttl = '1 day' WHERE key = 'a';
DELETE FROM regress_str WHERE key = 'c2' RETURNING *;
SELECT key, value, ttl IS NOT NULL AS expires FROM regress_str ORDER BY key;
SELECT redis_get('regress:t:c2') IS NULL AS deleted, redis_get('regress:t:d');

-- binary values
CREATE FOREIGN TABLE regress_bin (key text, value bytea) SERVER redis OPTIONS (key_prefix 'regress:bin:');
INSERT INTO regress_bin VALUES ('x', '\x00ff00');
SELECT * FROM regress_bin;
SELECT redis_get('regress:bin:x'::bytea);
DELETE FROM regress_bin;

-- many keys: several SCAN round trips with scan_count 100, memory per batch
CREATE FOREIGN TABLE regress_many (key text, value int)
  SERVER redis OPTIONS (key_prefix 'regress:many:', scan_count '100');
INSERT INTO regress_many SELECT 'k' || g, g FROM generate_series(1, 2500) g;
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT count(*), sum(value), min(key), max(key) FROM regress_many;
-- (one MGET per SCAN page; how many pages SCAN takes depends on the keyspace)
SELECT command, calls > 10 AS several_round_trips FROM redis_calls();
-- the next batch is already requested while rows are returned: a LIMIT
-- leaves it in flight, and a scan interleaved with other commands on the
-- same connection (a lateral inner scan, functions) still sees its own replies
SELECT count(*) FROM (SELECT key FROM regress_many LIMIT 150) s;
SELECT redis_get('regress:many:k42');
SELECT count(*), count(s.value), sum(a.value)
  FROM regress_many a,
       LATERAL (SELECT b.value || redis_get('regress:many:k7') AS value
                FROM regress_str b WHERE b.key = 'a' AND a.value > 0 OFFSET 0) s;
DELETE FROM regress_many WHERE value > 100;
SELECT count(*) FROM regress_many;
DELETE FROM regress_many;

-- a caught error inside a loop over a scan does not kill the scan: the
-- subtransaction that aborts closes only the requests it sent itself, and
-- with scan_count 1 the scan's next batch is in flight at every row
CREATE FOREIGN TABLE regress_sub (key text, value int)
  SERVER redis OPTIONS (key_prefix 'regress:sub:', scan_count '1');
INSERT INTO regress_sub SELECT 'k' || g, g FROM generate_series(1, 40) g;
CREATE FUNCTION regress_connections() RETURNS int LANGUAGE sql AS $$
	SELECT substring(datacore.redis_command('{INFO,stats}', 'regress_redis_admin') #>> '{}'
					 FROM 'total_connections_received:(\d+)')::int
$$;
SELECT regress_connections() AS conns \gset
DO $$
DECLARE
	r record;
	n int := 0;
	total int := 0;
BEGIN
	FOR r IN SELECT * FROM datacore.regress_sub LOOP
		BEGIN
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
		n := n + 1;
		total := total + r.value;
	END LOOP;
	RAISE NOTICE 'rows: %, sum: %', n, total;
END $$;
SELECT regress_connections() - :conns AS new_connections;
-- the same with a Redis call in the subtransaction, on the scan's connection
DO $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT * FROM datacore.regress_sub LOOP
		BEGIN
			PERFORM datacore.redis_get('regress:sub:k1');
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN
			NULL;
		END;
		n := n + 1;
	END LOOP;
	RAISE NOTICE 'rows: %', n;
END $$;
SELECT regress_connections() - :conns AS new_connections;
-- but a scan started inside the subtransaction that fails loses its
-- connection: its next batch was in flight, nobody will read it
DO $$
DECLARE
	r record;
BEGIN
	BEGIN
		FOR r IN SELECT * FROM datacore.regress_sub LOOP
			PERFORM 1 / 0;
		END LOOP;
	EXCEPTION WHEN division_by_zero THEN
		RAISE NOTICE 'caught';
	END;
	RAISE NOTICE 'then: %', datacore.redis_get('regress:sub:k2');
END $$;
SELECT regress_connections() - :conns AS new_connections;
DELETE FROM regress_sub;
DROP FUNCTION regress_connections();
DROP FOREIGN TABLE regress_sub;

-- remote bytes are checked before they become text: a value, a key, a field
SELECT redis_set('regress:t:badv'::bytea, '\x61ff'::bytea);
SELECT key, value FROM regress_str WHERE key = 'badv';
SELECT key, value FROM regress_str;
SELECT redis_set('regress:t:badv'::bytea, 'ok'::bytea), redis_set('regress:t:bad\000k'::bytea, 'ok'::bytea);
SELECT key FROM regress_str;
SELECT redis_del('regress:t:badv'),
       redis_command('{EVAL,"return redis.call(''DEL'', KEYS[1] .. ''\\0k'')",1,regress:t:bad}',
					 'regress_redis_admin') AS nul_key_deleted;

-- ------------------------------------------------------------------ hashes
CREATE FOREIGN TABLE regress_hash (key text, field text, value text, ttl interval)
  SERVER redis OPTIONS (table_type 'hash', key_prefix 'regress:t:');
CREATE FOREIGN TABLE regress_hashdoc (key text, value jsonb)
  SERVER redis OPTIONS (table_type 'hash', key_prefix 'regress:t:');
SELECT key, field, value, ttl FROM regress_hash;
SELECT * FROM regress_hashdoc;
INSERT INTO regress_hash VALUES ('h', 'g', 'w', NULL), ('h3', 'a', '1', '1 hour');
INSERT INTO regress_hash VALUES ('h', 'f', 'dup', NULL);
INSERT INTO regress_hashdoc VALUES ('h2', '{"x": 1, "y": "z"}');
INSERT INTO regress_hashdoc VALUES ('h2', '{"x": 2}');
INSERT INTO regress_hashdoc VALUES ('h4', '[]');
UPDATE regress_hash SET value = 'v2' WHERE key = 'h' AND field = 'f';
UPDATE regress_hash SET field = 'g2' WHERE key = 'h' AND field = 'g' RETURNING *;
SELECT key, field, value, ttl IS NOT NULL AS expires FROM regress_hash ORDER BY key, field;
UPDATE regress_hashdoc SET value = value || '{"w": "new"}' WHERE key = 'h2';
SELECT * FROM regress_hashdoc WHERE key = ANY ('{h2,h}') ORDER BY key;
DELETE FROM regress_hash WHERE key = 'h3' RETURNING key, field, value;
DELETE FROM regress_hashdoc WHERE key = 'h2' RETURNING *;
SELECT * FROM regress_hashdoc ORDER BY key;
-- a json column works too (text form kept as built)
CREATE FOREIGN TABLE regress_hashjson (key text, value json)
  SERVER redis OPTIONS (table_type 'hash', key_prefix 'regress:t:');
SELECT key, value::text FROM regress_hashjson;
DROP FOREIGN TABLE regress_hashjson;
SELECT * FROM regress_hash WHERE key = 'a';

-- ------------------------------------------------------------------ lists
CREATE FOREIGN TABLE regress_list (key text, value text)
  SERVER redis OPTIONS (table_type 'list', key_prefix 'regress:t:');
INSERT INTO regress_list VALUES ('l', 'one'), ('l', 'two'), ('l', 'three'), ('l', 'two');
SELECT * FROM regress_list;
DELETE FROM regress_list WHERE value = 'two' RETURNING *;
UPDATE regress_list SET value = 'ONE' WHERE value = 'one';
SELECT * FROM regress_list;
SELECT redis_command('{LRANGE,regress:t:l,0,-1}');

-- ------------------------------------------------------------------ sets
CREATE FOREIGN TABLE regress_set (key text, member text, ttl interval)
  SERVER redis OPTIONS (table_type 'set', key_prefix 'regress:t:');
INSERT INTO regress_set VALUES ('s', 'x', NULL), ('s', 'y', '1 hour'), ('s2', 'x', NULL);
INSERT INTO regress_set VALUES ('s', 'x', NULL);
SELECT key, member, ttl IS NOT NULL AS expires FROM regress_set ORDER BY key, member;
UPDATE regress_set SET member = 'z' WHERE key = 's2';
DELETE FROM regress_set WHERE key = 's' AND member = 'x';
SELECT key, member FROM regress_set ORDER BY key, member;

-- ------------------------------------------------------------------ sorted sets
CREATE FOREIGN TABLE regress_zset (key text, member text, score float8)
  SERVER redis OPTIONS (table_type 'zset', key_prefix 'regress:t:');
INSERT INTO regress_zset VALUES ('z', 'a', 1.5), ('z', 'b', 2), ('z', 'c', -1);
INSERT INTO regress_zset VALUES ('z', 'a', 9);
INSERT INTO regress_zset VALUES ('z', 'n', NULL);
SELECT * FROM regress_zset;
UPDATE regress_zset SET score = 3 WHERE member = 'a';
UPDATE regress_zset SET member = 'b2' WHERE member = 'b';
DELETE FROM regress_zset WHERE score < 0 RETURNING *;
SELECT * FROM regress_zset;
SELECT redis_command('{ZRANGE,regress:t:z,0,-1,WITHSCORES}');

-- ------------------------------------------------------------------ batched inserts
-- batch_size rows go in two round trips: one EXISTS (or one check per
-- element) for the batch, then the writes pipelined
CREATE FOREIGN TABLE regress_bat (key text, value text, ttl interval)
  SERVER redis OPTIONS (key_prefix 'regress:b:', batch_size '10');
CREATE FOREIGN TABLE regress_bad (key text) SERVER redis OPTIONS (batch_size '0');
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
INSERT INTO regress_bat SELECT 'k' || g, 'v' || g, CASE WHEN g = 7 THEN interval '1 hour' END
  FROM generate_series(1, 25) g;
SELECT * FROM redis_calls();
SELECT count(*), min(value), max(value), count(ttl) FROM regress_bat;
-- a key that exists fails its row: the rows before it are written, the rest not
INSERT INTO regress_bat VALUES ('n1', 'x'), ('n2', 'x'), ('k5', 'x'), ('n3', 'x');
-- so does a key repeated within the batch
INSERT INTO regress_bat VALUES ('n4', 'x'), ('n5', 'x'), ('n4', 'y'), ('n6', 'x');
SELECT key, value FROM regress_bat WHERE key LIKE 'n%' OR key = 'k5' ORDER BY key;
-- RETURNING sends each row on its own (no EXISTS)
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
INSERT INTO regress_bat VALUES ('r1', 'x'), ('r2', 'y') RETURNING key, value;
SELECT * FROM redis_calls();
-- element tables check per element; a key of another type fails its row
CREATE FOREIGN TABLE regress_bat_set (key text, member text)
  SERVER redis OPTIONS (table_type 'set', key_prefix 'regress:b:');
INSERT INTO regress_bat_set VALUES ('s', 'a'), ('s', 'b'), ('s', 'a');
INSERT INTO regress_bat_set VALUES ('s', 'c'), ('k1', 'a'), ('s', 'd');
INSERT INTO regress_bat_set VALUES ('s', 'e'), ('s', 'b'), ('s', 'f');
SELECT * FROM regress_bat_set ORDER BY member;
DELETE FROM regress_bat;
DELETE FROM regress_bat_set;
SELECT count(*) FROM regress_bat;
DROP FOREIGN TABLE regress_bat, regress_bat_set;

-- every table reads only its own type under the shared prefix
SELECT key, value FROM regress_str ORDER BY key;

-- privileges: scanning needs USAGE on the server
CREATE ROLE regress_redis_reader;
GRANT USAGE ON SCHEMA datacore TO regress_redis_reader;
GRANT SELECT ON regress_str TO regress_redis_reader;
SET ROLE regress_redis_reader;
SELECT count(*) FROM regress_str;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER redis TO regress_redis_reader;
SET ROLE regress_redis_reader;
SELECT count(*) FROM regress_str;
RESET ROLE;

-- a table on a server with a wrong password fails cleanly
SELECT format('CREATE SERVER regress_redis_badpw FOREIGN DATA WRAPPER datacore_redis OPTIONS (host %L, port %L)',
			  '127.0.0.1', port) FROM dc_test.ports WHERE service = 'redis' \gexec
CREATE USER MAPPING FOR PUBLIC SERVER regress_redis_badpw OPTIONS (user 'nobody', password 'wrong');
CREATE FOREIGN TABLE regress_badpw (key text, value text) SERVER regress_redis_badpw;
SELECT * FROM regress_badpw;

-- clean up
SELECT redis_command('{DEL,regress:t:a,regress:t:b,regress:t:d,regress:t:h,regress:t:l,regress:t:s,regress:t:s2,regress:t:z,regress:other}');
SELECT redis_command('{SCAN,0,MATCH,regress:*,COUNT,10000}');
DROP SERVER regress_redis_badpw CASCADE;
DROP FOREIGN TABLE regress_str, regress_bin, regress_many, regress_hash, regress_hashdoc,
  regress_list, regress_set, regress_zset;
REVOKE USAGE ON FOREIGN SERVER redis FROM regress_redis_reader;
REVOKE USAGE ON SCHEMA datacore FROM regress_redis_reader;
DROP ROLE regress_redis_reader;
DROP FUNCTION redis_calls();
DROP SERVER regress_redis_admin CASCADE;
