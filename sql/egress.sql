-- The egress guard: no connection to a link-local or cloud-metadata address
-- (169.254.0.0/16, 100.100.100.200, fe80::/10, fd00:ec2::254, and those
-- IPv4 addresses inside IPv6) unless a superuser allowed it on the server.
-- The check sits where the socket is opened, so these fail at once with
-- 42501 instead of waiting for a connection that cannot be routed here.
\i test/regress/setup.psql
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.try(server text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	PERFORM datacore.ollama_version(server);
	RETURN 'connected';
EXCEPTION WHEN OTHERS THEN
	-- past the guard, what answers (or not) depends on the network here
	RETURN CASE WHEN SQLSTATE = '42501' AND SQLERRM LIKE '%link-local%'
				THEN 'refused by the guard' || CASE WHEN clock_timestamp() - t0 < interval '1 second'
													THEN ' at once' ELSE ' slowly' END
				ELSE 'tried' END;
END $$;

CREATE SERVER regress_meta FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://169.254.169.254:1', connect_timeout_ms '300');
SELECT datacore.ollama_version('regress_meta');
\echo :LAST_ERROR_SQLSTATE
SELECT format('CREATE SERVER %I FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url %L, connect_timeout_ms %L)',
			  srvname, url, '300')
	FROM (VALUES
	('regress_meta_alibaba', 'http://100.100.100.200:1'),
	('regress_meta_v6', 'http://[fe80::1]:1'),
	('regress_meta_v6_zone', 'http://[fe80::a9fe:a9fe%25lo]:1'),
	('regress_meta_ec2_v6', 'http://[fd00:ec2::254]:1'),
	('regress_meta_mapped', 'http://[::ffff:169.254.169.254]:1'),
	('regress_meta_nat64', 'http://[64:ff9b::a9fe:a9fe]:1'),
	-- other spellings of 169.254.169.254 that the resolver accepts: a check
	-- of the URL text would miss them, the connect-time check does not
	('regress_meta_decimal', 'http://2852039166:1'),
	('regress_meta_hex', 'http://0xa9fea9fe:1'),
	('regress_meta_octal', 'http://0251.0376.0251.0376:1'),
	('regress_meta_short', 'http://169.254.43518:1'),
	('regress_not_meta', 'http://169.255.0.1:1'),
	('regress_loopback', 'http://127.0.0.1:1')) AS v(srvname, url) \gexec
SELECT srvname, substring(srvoptions[1] from 5) AS url, pg_temp.try(srvname::text)
	FROM pg_foreign_server WHERE srvname LIKE 'regress\_%' ORDER BY srvname;
-- the refusal does not count against the breaker
SELECT count(*) AS breakers FROM datacore.breakers WHERE server LIKE 'regress\_meta%';

-- Only a superuser may lift the guard, and only on the server: a user
-- mapping is not the place for it.
CREATE ROLE regress_egress_owner;
GRANT USAGE ON FOREIGN DATA WRAPPER datacore_ollama TO regress_egress_owner;
SET ROLE regress_egress_owner;
CREATE SERVER regress_own FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://169.254.169.254:1', allow_link_local 'true');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_own FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://169.254.169.254:1', allow_link_local 'false');
ALTER SERVER regress_own OPTIONS (SET allow_link_local 'on');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR regress_egress_owner SERVER regress_own
	OPTIONS (allow_link_local 'true');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP SERVER regress_own;

-- Allowed by a superuser, the same servers fail the ordinary way: the
-- address is tried (whatever the network here makes of it).
ALTER SERVER regress_meta OPTIONS (ADD allow_link_local 'true');
ALTER SERVER regress_meta_mapped OPTIONS (ADD allow_link_local 'true');
SELECT srvname, pg_temp.try(srvname::text)
	FROM pg_foreign_server WHERE srvname IN ('regress_meta', 'regress_meta_mapped') ORDER BY 1;

-- Redis connects without libcurl: the same fence, for an address literal
-- before connecting, and for the connected peer before AUTH.
CREATE SERVER regress_meta_redis FOREIGN DATA WRAPPER datacore_redis
	OPTIONS (host '169.254.169.254', port '6379', connect_timeout_ms '300');
SELECT datacore.redis_get('k', 'regress_meta_redis');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER regress_meta_redis OPTIONS (SET host '::ffff:169.254.1.1');
SELECT datacore.redis_get('k', 'regress_meta_redis');
\echo :LAST_ERROR_SQLSTATE
-- the numeric forms curl accepts are not addresses for Redis: refused at ALTER
ALTER SERVER regress_meta_redis OPTIONS (SET host '2852039166');
\echo :LAST_ERROR_SQLSTATE

DROP SERVER regress_meta, regress_meta_alibaba, regress_meta_v6, regress_meta_v6_zone,
	regress_meta_ec2_v6, regress_meta_mapped, regress_meta_nat64, regress_not_meta,
	regress_meta_decimal, regress_meta_hex, regress_meta_octal, regress_meta_short,
	regress_loopback, regress_meta_redis;
DROP OWNED BY regress_egress_owner;
DROP ROLE regress_egress_owner;
\i test/regress/teardown.psql
