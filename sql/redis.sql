-- Redis SQL functions against the stack's redis-server (ACL user, password).
\i test/regress/setup.psql
SET search_path = datacore, public;

-- A server on which a superuser allowed every command, for the test's own
-- bookkeeping (INFO, CONFIG); the same Redis and ACL user as "redis".
SELECT format('CREATE SERVER regress_redis_admin FOREIGN DATA WRAPPER datacore_redis OPTIONS (host %L, port %L, allow_dangerous_commands %L)',
			  '127.0.0.1', port, 'true') FROM dc_test.ports WHERE service = 'redis' \gexec
SELECT format('CREATE USER MAPPING FOR PUBLIC SERVER regress_redis_admin OPTIONS (user %L, password %L)',
			  u.value, p.value) FROM dc_test.secrets u, dc_test.secrets p
 WHERE u.name = 'redis_user' AND p.name = 'redis_password' \gexec

-- Keys of this test live under regress:fn: and are removed at the end.
SELECT redis_command('{DEL,regress:fn:s,regress:fn:t,regress:fn:n,regress:fn:q,regress:fn:h,regress:fn:b,regress:fn:bad}');

-- strings
SELECT redis_get('regress:fn:s') IS NULL AS missing;
SELECT redis_set('regress:fn:s', 'hello');
SELECT redis_get('regress:fn:s');
SELECT redis_exists('regress:fn:s'), redis_exists('regress:fn:nope');
-- only_if_absent: NX leaves an existing value alone
SELECT redis_set('regress:fn:s', 'other', only_if_absent => true);
SELECT redis_get('regress:fn:s');
SELECT redis_set('regress:fn:s', 'päivää €');
SELECT redis_get('regress:fn:s');

-- expiry
SELECT redis_ttl('regress:fn:s') IS NULL AS persistent;
SELECT redis_set('regress:fn:t', 'x', ttl => '1 hour');
SELECT redis_ttl('regress:fn:t') BETWEEN '59 minutes' AND '1 hour' AS ttl_ok;
SELECT redis_expire('regress:fn:s', '2 days');
SELECT redis_ttl('regress:fn:s') > '47 hours' AS expire_ok;
SELECT redis_expire('regress:fn:nope', '1 second');
SELECT redis_ttl('regress:fn:nope') IS NULL AS missing;
SELECT redis_set('regress:fn:t', 'x', ttl => '100 milliseconds');
SELECT pg_sleep(0.3);
SELECT redis_get('regress:fn:t') IS NULL AS expired;
SELECT redis_set('regress:fn:t', 'x', ttl => '0 seconds');
SELECT redis_set('regress:fn:t', 'x', ttl => '-1 hour');
SELECT redis_expire('regress:fn:s', '0.0001 seconds');

-- counters
SELECT redis_incr('regress:fn:n'), redis_incr('regress:fn:n', 10), redis_incr('regress:fn:n', -3);
SELECT redis_incr('regress:fn:s');

-- delete: one key or many
SELECT redis_del('regress:fn:n');
SELECT redis_del(ARRAY['regress:fn:s', 'regress:fn:nope', 'regress:fn:t']);
SELECT redis_del(ARRAY[]::text[]);
SELECT redis_del(ARRAY['a', NULL]);

-- lists and queues
SELECT redis_rpush('regress:fn:q', 'a');
SELECT redis_rpush('regress:fn:q', ARRAY['b', 'c']);
SELECT redis_lpush('regress:fn:q', 'z');
SELECT redis_lpush('regress:fn:q', ARRAY['y', 'x']);
SELECT redis_command('{LRANGE,regress:fn:q,0,-1}');
SELECT redis_lpop('regress:fn:q'), redis_rpop('regress:fn:q');
SELECT redis_blpop('regress:fn:q', 1);
SELECT redis_blpop('regress:fn:nope', 0.2) IS NULL AS timed_out;
SELECT redis_blpop('regress:fn:q', -1);
SELECT redis_lpop('regress:fn:nope') IS NULL AS empty;
SELECT redis_rpush('regress:fn:q', ARRAY[NULL]::text[]);

-- hashes
SELECT redis_hset('regress:fn:h', 'f1', 'v1');
SELECT redis_hset('regress:fn:h', 'f1', 'v1b');
SELECT redis_hset('regress:fn:h', '{"f2": "v2", "n": 3, "o": {"a": [1]}}');
SELECT redis_hget('regress:fn:h', 'f1'), redis_hget('regress:fn:h', 'nope') IS NULL AS no_field;
SELECT redis_hgetall('regress:fn:h');
SELECT redis_hgetall('regress:fn:nope');
SELECT redis_hset('regress:fn:h', '[1, 2]');
SELECT redis_hset('regress:fn:h', '{"x": null}');

-- WRONGTYPE is named as such
SELECT redis_get('regress:fn:h');
SELECT redis_lpop('regress:fn:h');
SELECT redis_hget('regress:fn:q', 'f');

-- binary-safe values: pass the key as bytea to get bytea back
SELECT redis_set('regress:fn:b', '\x00ff0a00'::bytea);
SELECT redis_get('regress:fn:b'::bytea);
SELECT redis_set('regress:fn:b'::bytea, '\xdeadbeef'::bytea, '1 hour');
SELECT redis_get('regress:fn:b'::bytea), redis_ttl('regress:fn:b') IS NOT NULL AS has_ttl;
SELECT redis_rpush('regress:fn:bq', '\x0001'::bytea), redis_lpop('regress:fn:bq'::bytea);
SELECT redis_hset('regress:fn:bh', 'f', '\x00'::bytea), redis_hget('regress:fn:bh'::bytea, 'f'::bytea);
SELECT redis_del(ARRAY['regress:fn:bh', 'regress:fn:bq']);
-- bytes that are not valid text are refused as text, and so is a NUL byte
SELECT redis_set('regress:fn:bad', '\xff00'::bytea);
SELECT redis_get('regress:fn:bad');
SELECT redis_set('regress:fn:bad', '\x610062'::bytea);
SELECT redis_get('regress:fn:bad');
SELECT redis_command('{GET,regress:fn:bad}');
SELECT redis_hset('regress:fn:bh', 'f', '\xfe'::bytea);
SELECT redis_hgetall('regress:fn:bh');
SELECT redis_del('regress:fn:bh');
-- an error reply goes into the message as a safe excerpt (a script returns
-- the stored bytes as its error text)
SELECT redis_set('regress:fn:bad', '\x6f6f7073ff0a01'::bytea);
SELECT redis_command('{EVAL,"return redis.error_reply(redis.call(''GET'', KEYS[1]))",1,regress:fn:bad}',
					 'regress_redis_admin');

-- pub/sub: nobody listens
SELECT redis_publish('regress:fn:channel', 'hello');
SELECT redis_publish('regress:fn:channel', '\x00'::bytea);

-- redis_command: every RESP2 reply type as JSON
SELECT redis_command('{PING}');                                   -- status
SELECT redis_command('{ECHO,"with space"}');                      -- bulk
SELECT redis_command('{EXISTS,regress:fn:h}');                    -- integer
SELECT redis_command('{GET,regress:fn:nope}');                    -- nil
SELECT redis_command('{HMGET,regress:fn:h,f1,nope}');             -- array with nil
SELECT redis_command('{SCAN,0,MATCH,regress:fn:h,COUNT,1000}');  -- nested array
-- an error reply to the command itself is raised
SELECT redis_command('{GET}');
SELECT redis_command('{}');
SELECT redis_command('{GET,NULL}');

-- the fence: commands in the ACL categories @admin, @dangerous, @connection
-- or @scripting (Redis's own COMMAND INFO) are refused with 42501; the ACL
-- user of the test allows them all (+@all), so nothing but the fence stops them
SELECT redis_command('{CONFIG,GET,requirepass}');
SELECT redis_command('{config,set,dir,/tmp}');
SELECT redis_command('{MIGRATE,127.0.0.1,1,regress:fn:h,0,1000}');
SELECT redis_command('{REPLICAOF,127.0.0.1,1}');
SELECT redis_command('{MODULE,LOAD,/tmp/x.so}');
SELECT redis_command('{DEBUG,SLEEP,0}');
SELECT redis_command('{FLUSHALL}');
SELECT redis_command('{FLUSHDB}');
SELECT redis_command('{SHUTDOWN}');
SELECT redis_command('{ACL,SETUSER,evil,on,>pw,+@all}');
SELECT redis_command('{ACL,LIST}');
SELECT redis_command('{KEYS,*}');
SELECT redis_command('{INFO}');
SELECT redis_command('{WAIT,0,0}');
-- scripts can call anything the Redis user may run, so @scripting is refused
SELECT redis_command('{EVAL,"return redis.call(''FLUSHALL'')",0}');
SELECT redis_command('{FCALL,f,0}');
SELECT redis_command('{SCRIPT,EXISTS,abc}');
-- subcommands carry their own categories
SELECT redis_command('{OBJECT,ENCODING,regress:fn:h}');
SELECT redis_command('{Config,Help}') -> 0;
-- names Redis does not know are refused before anything is sent
SELECT redis_command('{NOSUCHCOMMAND,x}');
SELECT redis_command('{CONFIG,NOSUCH}');
-- PING and ECHO are @connection, but only answer
SELECT redis_command('{PING}'), redis_command('{echo,hi}');
-- COMMAND INFO is asked once per command name and connection
SELECT redis_command('{CONFIG,RESETSTAT}', 'regress_redis_admin') AS reset \gset
SELECT count(redis_command(ARRAY['TYPE', 'regress:fn:x' || g])) FROM generate_series(1, 5) g;
SELECT substring(redis_command('{INFO,commandstats}', 'regress_redis_admin') #>> '{}'
				 FROM 'cmdstat_command\|info:calls=(\d+)') AS command_info_calls;
-- a server where a superuser allowed it runs everything but the
-- connection-state commands
SELECT redis_command('{CONFIG,GET,maxmemory-policy}', 'regress_redis_admin');
SELECT redis_command('{SELECT,1}', 'regress_redis_admin');
-- commands that would change the shared connection are refused, with 0A000
SELECT redis_command('{SELECT,1}');
SELECT redis_command('{subscribe,ch}');
SELECT redis_command('{AUTH,x,y}');
SELECT redis_command('{CLIENT,SETNAME,x}');
SELECT redis_command('{HELLO,3}');
SELECT redis_command('{RESET}');
SELECT redis_command('{MULTI}');
SELECT redis_command('{watch,regress:fn:h}');
SELECT redis_command('{EXEC}');
SELECT redis_command('{DISCARD}');
SELECT redis_command('{UNWATCH}');

-- only a superuser may set allow_dangerous_commands true, never in a mapping
CREATE ROLE regress_redis_owner;
GRANT USAGE ON FOREIGN DATA WRAPPER datacore_redis TO regress_redis_owner;
SET ROLE regress_redis_owner;
CREATE SERVER regress_redis_own FOREIGN DATA WRAPPER datacore_redis
  OPTIONS (host '127.0.0.1', allow_dangerous_commands 'true');
CREATE SERVER regress_redis_own FOREIGN DATA WRAPPER datacore_redis
  OPTIONS (host '127.0.0.1', allow_dangerous_commands 'false');
CREATE USER MAPPING FOR regress_redis_owner SERVER regress_redis_own
  OPTIONS (allow_dangerous_commands 'true');
ALTER SERVER regress_redis_own OPTIONS (SET allow_dangerous_commands 'true');
RESET ROLE;
ALTER SERVER regress_redis_own OPTIONS (SET allow_dangerous_commands 'true');
SET ROLE regress_redis_owner;
ALTER SERVER regress_redis_own OPTIONS (ADD timeout_ms '1000');
ALTER SERVER regress_redis_own OPTIONS (SET allow_dangerous_commands 'off');
RESET ROLE;
ALTER SERVER regress_redis_own OPTIONS (SET allow_dangerous_commands 'maybe');
DROP SERVER regress_redis_own;
REVOKE USAGE ON FOREIGN DATA WRAPPER datacore_redis FROM regress_redis_owner;
DROP ROLE regress_redis_owner;

-- redis_transaction: MULTI, the commands, EXEC in one round trip; rows of a
-- two-dimensional array, shorter commands padded with trailing NULLs
SELECT redis_transaction(ARRAY[['SET', 'regress:fn:n', '5'], ['INCRBY', 'regress:fn:n', '2'],
							   ['GET', 'regress:fn:n', NULL]]);
SELECT redis_transaction('{PING}');
-- an error while executing is part of the result, the rest ran
SELECT redis_transaction(ARRAY[['INCR', 'regress:fn:h', NULL], ['HGET', 'regress:fn:h', 'f2']]);
-- an error while queueing discards the whole transaction
SELECT redis_transaction(ARRAY[['INCR', 'regress:fn:n'], ['GET', NULL]]);
SELECT redis_transaction(ARRAY[['INCR', 'regress:fn:n', NULL], ['INCR', 'regress:fn:n', 'extra']]);
SELECT redis_get('regress:fn:n');
-- every command passes the same fence
SELECT redis_transaction(ARRAY[['GET', 'regress:fn:n', NULL], ['CONFIG', 'GET', 'requirepass']]);
SELECT redis_transaction(ARRAY[['GET', 'regress:fn:n'], ['MULTI', NULL]]);
SELECT redis_transaction(ARRAY[['GET', 'regress:fn:n'], ['EXEC', NULL]]);
SELECT redis_transaction(ARRAY[['GET', 'regress:fn:n'], ['NOSUCH', NULL]]);
SELECT redis_transaction('{}');
SELECT redis_transaction(ARRAY[[NULL, NULL]]::text[]);
SELECT redis_transaction(ARRAY[['GET', NULL, 'x']]);
-- no transaction state is left behind: the next call is not queued
SELECT redis_set('regress:fn:n', '1'), redis_incr('regress:fn:n');
SELECT redis_del('regress:fn:n');

-- host names are refused: hiredis would resolve them without a timeout
CREATE SERVER regress_redis_name FOREIGN DATA WRAPPER datacore_redis OPTIONS (host 'localhost');
CREATE SERVER regress_redis_name FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '');
CREATE SERVER regress_redis_name FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '::1', port '1');
ALTER SERVER regress_redis_name OPTIONS (SET host 'redis.example.com');
SELECT redis_get('k', 'regress_redis_name');
-- a server from before the check (the validator bypassed here) fails before
-- any lookup
UPDATE pg_foreign_server SET srvoptions = '{host=localhost,port=1}' WHERE srvname = 'regress_redis_name';
SELECT redis_get('k', 'regress_redis_name');
DROP SERVER regress_redis_name;

-- null arguments
SELECT redis_set(NULL, 'x');
SELECT redis_set('k', NULL::text);
SELECT redis_get('k', NULL);

-- servers: missing, wrong wrapper, no privilege
SELECT redis_get('k', 'nosuch');
SELECT redis_get('k', 'qdrant');
CREATE ROLE regress_redis_user;
GRANT USAGE ON SCHEMA datacore TO regress_redis_user;
SET ROLE regress_redis_user;
SELECT redis_get('k');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER redis TO regress_redis_user;
SET ROLE regress_redis_user;
SELECT redis_hget('regress:fn:h', 'f1');
RESET ROLE;

-- authentication: the PUBLIC mapping holds the ACL user; a wrong password
-- and a missing mapping fail clearly, without printing the password
SELECT format('CREATE SERVER regress_redis2 FOREIGN DATA WRAPPER datacore_redis OPTIONS (host %L, port %L)',
			  '127.0.0.1', port) FROM dc_test.ports WHERE service = 'redis' \gexec
SELECT redis_get('k', 'regress_redis2');
SELECT format('CREATE USER MAPPING FOR PUBLIC SERVER regress_redis2 OPTIONS (user %L, password %L)',
			  value, 'not-the-password') FROM dc_test.secrets WHERE name = 'redis_user' \gexec
SELECT redis_get('k', 'regress_redis2');
-- the mapping change is picked up by the next call (cache invalidation)
SELECT format('ALTER USER MAPPING FOR PUBLIC SERVER regress_redis2 OPTIONS (SET password %L)', value)
  FROM dc_test.secrets WHERE name = 'redis_password' \gexec
SELECT redis_hget('regress:fn:h', 'f1', 'regress_redis2');
-- a server change too: db 1 does not hold the test's keys
ALTER SERVER regress_redis2 OPTIONS (ADD db '1');
SELECT redis_hget('regress:fn:h', 'f1', 'regress_redis2') IS NULL AS other_db;
ALTER SERVER regress_redis2 OPTIONS (SET db '99999');
ALTER SERVER regress_redis2 OPTIONS (SET db '999');
SELECT redis_get('k', 'regress_redis2');
ALTER SERVER regress_redis2 OPTIONS (DROP db);
SELECT redis_hget('regress:fn:h', 'f1', 'regress_redis2');

-- nobody listening: connection refused
CREATE SERVER regress_redis_down FOREIGN DATA WRAPPER datacore_redis
  OPTIONS (host '127.0.0.1', port '1', connect_timeout_ms '2000');
SELECT redis_get('k', 'regress_redis_down');
-- with breaker_threshold, calls fail at once after that many failures
ALTER SERVER regress_redis_down OPTIONS (ADD breaker_threshold '2', ADD breaker_cooldown_ms '60000');
SELECT redis_get('k', 'regress_redis_down');
SELECT redis_get('k', 'regress_redis_down');
SELECT redis_get('k', 'regress_redis_down');
SELECT server, failures FROM breaker_status() WHERE server = 'regress_redis_down';

-- response size cap
ALTER SERVER regress_redis2 OPTIONS (ADD max_response_bytes '100');
SELECT redis_set('regress:fn:big', repeat('x', 500));
SELECT length(redis_get('regress:fn:big', 'regress_redis2'));
SELECT length(redis_get('regress:fn:big'));
SELECT redis_del('regress:fn:big');

-- command timeout: a blocking command outliving timeout_ms
ALTER SERVER regress_redis2 OPTIONS (DROP max_response_bytes, ADD timeout_ms '200');
SELECT redis_command('{BLPOP,regress:fn:nope,5}', 'regress_redis2');
-- the connection abandoned mid-request is replaced for the next call
SELECT redis_command('{PING}', 'regress_redis2');

-- cancellation: BLPOP with timeout 0 waits until statement_timeout
SET statement_timeout = '300ms';
SELECT redis_blpop('regress:fn:nope', 0);
RESET statement_timeout;
-- the cancelled connection was closed, so Redis holds no blocked client
SELECT pg_sleep(0.2);
SELECT substring(redis_command('{INFO,clients}', 'regress_redis_admin') #>> '{}' FROM 'blocked_clients:(\d+)') AS blocked_clients;
SELECT redis_rpush('regress:fn:q', 'after-cancel'), redis_blpop('regress:fn:q', 0);
-- the same inside a subtransaction that is rolled back: the session goes on
SET statement_timeout = '300ms';
DO $$
BEGIN
	BEGIN
		PERFORM datacore.redis_blpop('regress:fn:nope', 0);
	EXCEPTION WHEN query_canceled THEN
		RAISE NOTICE 'cancelled: %', SQLERRM;
	END;
	PERFORM datacore.redis_rpush('regress:fn:q', 'in-same-statement');
	RAISE NOTICE 'then: %', datacore.redis_rpop('regress:fn:q');
END $$;
RESET statement_timeout;
SELECT redis_command('{PING}');

-- redis-server restarted under an open session: the next call reconnects
SELECT redis_set('regress:fn:s', 'before restart');
\! test/services restart redis >/dev/null 2>&1
SELECT redis_get('regress:fn:s') IS NULL AS data_gone_with_restart;
SELECT redis_set('regress:fn:s', 'after restart');
SELECT redis_get('regress:fn:s');
SELECT redis_get('regress:fn:s', 'regress_redis2');

-- clean up
SELECT redis_command('{DEL,regress:fn:s,regress:fn:t,regress:fn:n,regress:fn:q,regress:fn:h,regress:fn:b,regress:fn:bad}');
DROP SERVER regress_redis2, regress_redis_down, regress_redis_admin CASCADE;
REVOKE USAGE ON FOREIGN SERVER redis FROM regress_redis_user;
REVOKE USAGE ON SCHEMA datacore FROM regress_redis_user;
DROP ROLE regress_redis_user;
