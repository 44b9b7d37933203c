-- Option validation: every wrapper checks names, values and where secrets may go.
\i test/regress/setup.psql

-- unknown option names, with and without a close match
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', timeout '5');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', frobnicate 'x');
CREATE SERVER regress_r FOREIGN DATA WRAPPER datacore_redis OPTIONS (hots 'localhost');

-- url is required for HTTP services, and must be http(s) without credentials
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama;
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'ftp://example.com');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'file:///etc/passwd');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'http://');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'http://host/x?a=b');
CREATE SERVER regress_q FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'http://admin:pw@host:6333');

-- numeric values: non-numeric, negative, zero, out of range
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', timeout_ms 'soon');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', timeout_ms '-5');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', connect_timeout_ms '0');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', max_response_bytes '12kb');
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', retries '11');
CREATE SERVER regress_r FOREIGN DATA WRAPPER datacore_redis OPTIONS (port '70000');
CREATE SERVER regress_r FOREIGN DATA WRAPPER datacore_redis OPTIONS (port '0');
CREATE SERVER regress_r FOREIGN DATA WRAPPER datacore_redis OPTIONS (port '6379', port '6380');
CREATE SERVER regress_s FOREIGN DATA WRAPPER datacore_s3
	OPTIONS (url 'http://127.0.0.1:1', multipart_threshold '1000');

-- secrets only on user mappings, and only the service's own
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', bearer_token 'sekrit');
CREATE SERVER regress_r FOREIGN DATA WRAPPER datacore_redis OPTIONS (password 'sekrit');
CREATE SERVER regress_s FOREIGN DATA WRAPPER datacore_s3
	OPTIONS (url 'http://127.0.0.1:1', secret_access_key 'sekrit');

-- a valid server of each kind
CREATE SERVER regress_o FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1/', model 'llama3.2', timeout_ms '1000',
			 connect_timeout_ms '200', max_response_bytes '1048576', retries '2',
			 embed_batch_size '32', keep_alive '5m');
CREATE SERVER regress_q FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url 'https://qdrant.example:6333');
CREATE SERVER regress_s FOREIGN DATA WRAPPER datacore_s3
	OPTIONS (url 'http://127.0.0.1:9000', region 'eu-west-1', multipart_threshold '8388608');
CREATE SERVER regress_r FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '127.0.0.1', port '6379', db '2');

-- ALTER is validated too
ALTER SERVER regress_o OPTIONS (SET timeout_ms 'never');
ALTER SERVER regress_o OPTIONS (DROP url);
ALTER SERVER regress_o OPTIONS (SET timeout_ms '2000');

-- user mappings: the service's secrets only; server options are refused there
CREATE USER MAPPING FOR PUBLIC SERVER regress_o OPTIONS (api_key 'x');
CREATE USER MAPPING FOR PUBLIC SERVER regress_o OPTIONS (timeout_ms '5');
CREATE USER MAPPING FOR PUBLIC SERVER regress_o OPTIONS (bearer_token 'tok');
CREATE USER MAPPING FOR PUBLIC SERVER regress_q OPTIONS (api_key 'key');
CREATE USER MAPPING FOR PUBLIC SERVER regress_s
	OPTIONS (access_key_id 'AKID', secret_access_key 'sk', session_token 'st');
CREATE USER MAPPING FOR PUBLIC SERVER regress_r OPTIONS (user 'app', password 'pw', pasword 'x');
CREATE USER MAPPING FOR PUBLIC SERVER regress_r OPTIONS (user 'app', password 'pw');

-- foreign-table options are checked per wrapper
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_r OPTIONS (table_type 'stream');
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_r OPTIONS (collection 'x');
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s OPTIONS (bucket 'b', format 'parquet');
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s OPTIONS (bucket 'b', url 'http://x');
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_r
	OPTIONS (table_type 'hash', key_prefix 'user:', scan_count '500');
DROP FOREIGN TABLE regress_ft;

-- a wrong value is HV024 for every kind, booleans and the csv delimiter too;
-- a missing bucket is HV00J when the table is created, not at the first scan
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s OPTIONS (bucket 'b', header 'maybe');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s OPTIONS (bucket 'b', delimiter ';;');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s OPTIONS (bucket 'b', delimiter '"');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s OPTIONS (prefix 'x/');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_ft (key text) SERVER regress_s
	OPTIONS (bucket 'b', format 'csv', header 'off', delimiter ';');
ALTER FOREIGN TABLE regress_ft OPTIONS (SET delimiter ';;');
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE regress_ft OPTIONS (DROP bucket);
\echo :LAST_ERROR_SQLSTATE
DROP FOREIGN TABLE regress_ft;
ALTER SERVER regress_r OPTIONS (ADD allow_dangerous_commands 'perhaps');
\echo :LAST_ERROR_SQLSTATE

-- retries: never for Redis, whose commands are not resent; 0-10 elsewhere
ALTER SERVER regress_r OPTIONS (ADD retries '2');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER regress_q OPTIONS (ADD retries '10');

-- wrappers take no options of their own
ALTER FOREIGN DATA WRAPPER datacore_redis OPTIONS (host 'x');

-- a function given a server of another wrapper, or none at all
SELECT datacore.ollama_version('regress_q');
SELECT datacore.ollama_version('no_such_server');
SELECT datacore.ollama_version(NULL);

DROP SERVER regress_o, regress_q, regress_s, regress_r CASCADE;
\i test/regress/teardown.psql
