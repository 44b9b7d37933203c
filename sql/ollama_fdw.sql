-- Ollama foreign tables: installed models (table_type 'models') and models
-- loaded in memory ('running').
\i test/regress/setup.psql
\set SHOW_CONTEXT never

CREATE FOREIGN TABLE regress_models (
	name text, model text, modified_at timestamptz, size bigint, digest text,
	family text, parameter_size text, quantization_level text, families jsonb,
	details jsonb, no_such_field text
) SERVER ollama;

SELECT name, model, modified_at, size, length(digest) AS digest_len, family,
	   parameter_size, quantization_level, families, details->>'format' AS format,
	   no_such_field
FROM regress_models ORDER BY name;
-- qualifiers are checked locally
SELECT name FROM regress_models WHERE family = 'bert';
SELECT count(*) FROM regress_models WHERE size > 1000000000;
EXPLAIN (COSTS OFF) SELECT name FROM regress_models WHERE family = 'bert';
-- one request per scan
SELECT dc_test.clear_log('ollama');
SELECT count(*) FROM regress_models a JOIN regress_models b USING (name);
SELECT l->>'method' AS method, l->>'path' AS path FROM dc_test.log('ollama') l;
-- the same rows as the function
SELECT (SELECT array_agg(name ORDER BY name) FROM regress_models)
	 = (SELECT array_agg(name ORDER BY name) FROM datacore.ollama_models()) AS same_as_function;

-- running models: unload all, then load one for good
ALTER SERVER ollama OPTIONS (ADD keep_alive '0');
SELECT datacore.ollama_generate_json('', 'llama3.2')->>'done_reason' AS done_reason;
SELECT datacore.ollama_embed('x', 'nomic-embed-text') IS NOT NULL AS unloaded,
	   datacore.ollama_embed('x', 'all-minilm') IS NOT NULL AS unloaded;
ALTER SERVER ollama OPTIONS (SET keep_alive '-1');
SELECT array_length(datacore.ollama_embed('x', 'all-minilm'), 1) AS dims;
ALTER SERVER ollama OPTIONS (DROP keep_alive);
CREATE FOREIGN TABLE regress_running (
	name text, size_vram bigint, expires_at timestamptz, context_length int,
	family text
) SERVER ollama OPTIONS (table_type 'running');
SELECT name, size_vram, expires_at, context_length, family FROM regress_running;
EXPLAIN (COSTS OFF) SELECT * FROM regress_running;

-- option checks
CREATE FOREIGN TABLE regress_bad (name text) SERVER ollama OPTIONS (table_type 'loaded');
CREATE FOREIGN TABLE regress_bad (name text) SERVER ollama OPTIONS (tabletype 'models');
-- an array column takes a JSON array element by element
CREATE FOREIGN TABLE regress_families (name text, families text[], details jsonb)
	SERVER ollama;
SELECT name, families, families[1] AS first FROM regress_families ORDER BY name;
DROP FOREIGN TABLE regress_families;
-- a column whose type cannot take the value
CREATE FOREIGN TABLE regress_badtype (name int) SERVER ollama;
SELECT * FROM regress_badtype;
\echo :LAST_ERROR_SQLSTATE
DROP FOREIGN TABLE regress_badtype;

-- a failing server: the scan raises the mapped error
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500, "times": 1}');
SELECT * FROM regress_models;
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "malformed", "times": 1}');
SELECT * FROM regress_running;
\echo :LAST_ERROR_SQLSTATE

-- privileges: SELECT on the table and USAGE on the server
CREATE ROLE regress_ollama_fdw_user;
GRANT USAGE ON SCHEMA public TO regress_ollama_fdw_user;
GRANT SELECT ON regress_models TO regress_ollama_fdw_user;
SET ROLE regress_ollama_fdw_user;
SELECT count(*) FROM regress_models;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER ollama TO regress_ollama_fdw_user;
SET ROLE regress_ollama_fdw_user;
SELECT count(*) FROM regress_models;
RESET ROLE;
-- a view runs the scan as its owner
REVOKE USAGE ON FOREIGN SERVER ollama FROM regress_ollama_fdw_user;
CREATE VIEW regress_models_view AS SELECT name FROM regress_models;
GRANT SELECT ON regress_models_view TO regress_ollama_fdw_user;
SET ROLE regress_ollama_fdw_user;
SELECT count(*) FROM regress_models_view;
RESET ROLE;

DROP VIEW regress_models_view;
REVOKE ALL ON regress_models FROM regress_ollama_fdw_user;
REVOKE USAGE ON SCHEMA public FROM regress_ollama_fdw_user;
DROP ROLE regress_ollama_fdw_user;
DROP FOREIGN TABLE regress_models, regress_running;
\i test/regress/teardown.psql
