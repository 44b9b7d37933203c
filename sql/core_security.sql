-- The privilege fence and secret handling shared by every service.
\i test/regress/setup.psql
\set SHOW_CONTEXT never

CREATE ROLE regress_core_app;
CREATE ROLE regress_core_other;
GRANT USAGE ON SCHEMA datacore TO regress_core_app, regress_core_other;

-- Without USAGE on the server nothing leaves the machine.
SET ROLE regress_core_app;
SELECT datacore.ollama_version('ollama');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS requests_sent FROM dc_test.log('ollama');

-- USAGE opens exactly that server.
GRANT USAGE ON FOREIGN SERVER ollama TO regress_core_app;
SET ROLE regress_core_app;
SELECT datacore.ollama_version('ollama');
SELECT datacore.ollama_version('qdrant');
RESET ROLE;

-- A bearer token lives in a user mapping; the role's own mapping wins over
-- PUBLIC, and the header is sent only when a token is set.
CREATE USER MAPPING FOR regress_core_app SERVER ollama OPTIONS (bearer_token 'tok-app-Secret1');
CREATE USER MAPPING FOR PUBLIC SERVER ollama OPTIONS (bearer_token 'tok-public-Secret2');
SELECT dc_test.clear_log('ollama');
SET ROLE regress_core_app;
SELECT datacore.ollama_version('ollama');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER ollama TO regress_core_other;
SET ROLE regress_core_other;
SELECT datacore.ollama_version('ollama');
RESET ROLE;
DROP USER MAPPING FOR PUBLIC SERVER ollama;
SELECT datacore.ollama_version('ollama');
SELECT r->>'path' AS path, r->'headers'->>'authorization' AS authorization
	FROM dc_test.log('ollama') r;

-- Other roles cannot read the secrets of a mapping.
SET ROLE regress_core_other;
SELECT srvname, usename, umoptions FROM pg_user_mappings
	WHERE srvname = 'ollama' ORDER BY usename;
RESET ROLE;

-- No error message shows a secret, even when the request fails.
ALTER SERVER ollama OPTIONS (SET url 'http://127.0.0.1:1');
SET ROLE regress_core_app;
SELECT datacore.ollama_version('ollama');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Revoking USAGE closes the fence again.
REVOKE USAGE ON FOREIGN SERVER ollama FROM regress_core_app;
SET ROLE regress_core_app;
SELECT datacore.ollama_version('ollama');
RESET ROLE;

-- jansson objects are built by jansson's own code, not the server's
-- json_object(); a wrong binding would crash here.
SELECT jsonb_typeof(datacore.build_info()) AS kind,
	   datacore.build_info() ? 'libraries' AS has_libraries;

DROP USER MAPPING FOR regress_core_app SERVER ollama;
REVOKE ALL ON SCHEMA datacore FROM regress_core_app, regress_core_other;
DROP ROLE regress_core_app, regress_core_other;
\i test/regress/teardown.psql
