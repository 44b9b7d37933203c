-- Ollama functions against the stand-in: what each returns, and (from the
-- stand-in's request log) exactly what was sent.
\i test/regress/setup.psql
\set SHOW_CONTEXT never

-- version; a NULL server name gives NULL, as for a strict function
SELECT datacore.ollama_version();
SELECT datacore.ollama_version(NULL) IS NULL AS null_server;

-- generate: the default model, "stream": false, no Authorization header
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('Why is the sky blue?');
SELECT l->>'method' AS method, l->>'path' AS path, l->'body' AS body,
	   l->'headers' ? 'authorization' AS sent_authorization
FROM dc_test.log('ollama') l;

-- system prompt, options passed through untouched, JSON mode
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('List three colours', system => 'You are terse.',
	options => '{"temperature": 0, "seed": 7, "num_ctx": 8192, "top_p": 0.9, "stop": ["\n\n"]}',
	format => '"json"');
SELECT l->'body' AS body FROM dc_test.log('ollama') l;

-- a JSON schema as format; the reply text is parsed by the caller
SELECT datacore.ollama_generate('Summarise', format => '{"type": "object",
	"properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
	"required": ["summary", "score"]}')::jsonb AS structured;

-- the whole reply: done_reason, token counts, durations
SELECT r->>'response' AS response, r->>'done_reason' AS done_reason,
	   (r->>'prompt_eval_count')::int AS prompt_eval_count,
	   (r->>'eval_count')::int AS eval_count,
	   (r->>'total_duration')::bigint > 0 AS has_total_duration,
	   r ? 'eval_duration' AS has_eval_duration, r->'done' AS done
FROM datacore.ollama_generate_json('one two three four five six',
	options => '{"num_predict": 3}') r;
SELECT array_agg(k ORDER BY k) AS keys
FROM jsonb_object_keys(datacore.ollama_generate_json('hi', 'llama3.2')) k;

-- keep_alive from the server option: a duration string, or seconds as a number
SELECT dc_test.clear_log('ollama');
ALTER SERVER ollama OPTIONS (ADD keep_alive '10m');
SELECT datacore.ollama_generate('a');
ALTER SERVER ollama OPTIONS (SET keep_alive '-1');
SELECT datacore.ollama_embed('a') IS NOT NULL AS embedded;
ALTER SERVER ollama OPTIONS (DROP keep_alive);
SELECT l->>'path' AS path, l->'body'->'keep_alive' AS keep_alive FROM dc_test.log('ollama') l;

-- NULL prompt gives NULL without a request
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate(NULL) IS NULL AS null_prompt,
	   datacore.ollama_generate_json(NULL) IS NULL AS null_prompt_json,
	   datacore.ollama_generate('x', server => NULL) IS NULL AS null_server;
SELECT count(*) AS requests FROM dc_test.log('ollama');

-- argument errors, raised before anything is sent
SELECT datacore.ollama_generate('x', options => '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.ollama_generate('x', format => '"yaml"');
SELECT datacore.ollama_generate('x', format => '[1]');
SELECT datacore.ollama_generate('x', model => '');
SELECT count(*) AS requests FROM dc_test.log('ollama');

-- no model argument and no model option on the server
CREATE SERVER regress_nomodel FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1');
SELECT datacore.ollama_generate('x', server => 'regress_nomodel');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.ollama_embed('x', server => 'regress_nomodel');
DROP SERVER regress_nomodel;

-- unknown model: 404 named, with a hint to pull it
SELECT datacore.ollama_generate('x', model => 'no-such-model');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.ollama_embed('x', model => 'no-such-model');
SELECT datacore.ollama_show('no-such-model');
-- the server's 400 text goes to DETAIL
SELECT datacore.ollama_generate('x', model => 'nomic-embed-text');
\echo :LAST_ERROR_SQLSTATE
-- and its 500 text (a known option with the wrong JSON type)
SELECT datacore.ollama_generate('x', options => '{"num_ctx": "big"}');
\echo :LAST_ERROR_SQLSTATE

-- chat: the assistant message
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_chat('[{"role": "system", "content": "Answer in one line."},
	{"role": "user", "content": "What is RAG?"}]', options => '{"temperature": 0.2}');
SELECT l->>'path' AS path, l->'body' AS body FROM dc_test.log('ollama') l;
-- tools: the model's tool_calls come back in the message
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_chat('[{"role": "user", "content": "What is the weather in Paris?"}]',
	tools => '[{"type": "function", "function": {"name": "get_weather",
		"description": "Current weather", "parameters": {"type": "object",
		"properties": {"city": {"type": "string"}}, "required": ["city"]}}}]');
SELECT l->'body'->'tools'->0->'function'->>'name' AS tool_sent,
	   l->'body'->'stream' AS stream FROM dc_test.log('ollama') l;
SELECT datacore.ollama_chat('[{"role": "user", "content": "colours"}]', format => '"json"');
SELECT datacore.ollama_chat(NULL) IS NULL AS null_messages;
SELECT datacore.ollama_chat('{"role": "user"}');
\echo :LAST_ERROR_SQLSTATE
SELECT datacore.ollama_chat('[]');
SELECT datacore.ollama_chat('[{"content": "no role"}]');
SELECT datacore.ollama_chat('[{"role": "user", "content": "x"}]', tools => '{}');
SELECT datacore.ollama_chat('[{"role": "user", "content": "x"}]', model => 'no-such-model');

-- embeddings: one text, unit length, the server's embedding_model
SELECT dc_test.clear_log('ollama');
SELECT array_length(v, 1) AS dims,
	   round(sqrt((SELECT sum(x * x) FROM unnest(v) x))::numeric, 4) AS norm
FROM datacore.ollama_embed('the quick brown fox') v;
SELECT array_length(datacore.ollama_embed('the quick brown fox', 'all-minilm'), 1) AS dims;
SELECT l->'body' AS body FROM dc_test.log('ollama') l;
SELECT datacore.ollama_embed(NULL::text) IS NULL AS null_input;
SELECT datacore.ollama_embed('');
\echo :LAST_ERROR_SQLSTATE
-- a model that cannot embed: 400 text in DETAIL
SELECT datacore.ollama_embed('x', 'llama3.2');

-- batched: one request per embed_batch_size texts, order kept
ALTER SERVER ollama OPTIONS (ADD embed_batch_size '2');
SELECT dc_test.clear_log('ollama');
SELECT idx, array_length(embedding, 1) AS dims
FROM datacore.ollama_embed(ARRAY['alpha', 'beta', 'gamma', 'delta', 'epsilon']);
SELECT l->>'path' AS path, l->'body'->'input' AS input, l->'body'->>'model' AS model
FROM dc_test.log('ollama') l ORDER BY (l->>'seq')::int;
-- each batched vector is the one a single call returns for that text
SELECT bool_and(e.embedding = datacore.ollama_embed(t.txt)) AS same_as_single
FROM datacore.ollama_embed(ARRAY['alpha', 'beta', 'gamma', 'delta', 'epsilon']) e
JOIN unnest(ARRAY['alpha', 'beta', 'gamma', 'delta', 'epsilon']) WITH ORDINALITY t(txt, n)
	ON t.n = e.idx;
ALTER SERVER ollama OPTIONS (DROP embed_batch_size);
-- default batch size 64
SELECT dc_test.clear_log('ollama');
SELECT count(*) AS rows, min(idx), max(idx), count(DISTINCT array_length(embedding, 1)) AS dim_count
FROM datacore.ollama_embed(ARRAY(SELECT 'text number ' || g FROM generate_series(1, 130) g));
SELECT jsonb_array_length(l->'body'->'input') AS batch, l->'body'->'input'->>0 AS first
FROM dc_test.log('ollama') l ORDER BY (l->>'seq')::int;
-- edge cases: no texts (no request), NULL array, NULL element, empty text
SELECT dc_test.clear_log('ollama');
SELECT count(*) AS rows FROM datacore.ollama_embed(ARRAY[]::text[]);
SELECT count(*) AS rows FROM datacore.ollama_embed(NULL::text[]);
SELECT count(*) AS requests FROM dc_test.log('ollama');
SELECT * FROM datacore.ollama_embed(ARRAY['a', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM datacore.ollama_embed(ARRAY['a', '']);
SELECT * FROM datacore.ollama_embed(ARRAY[['a'], ['b']]);
SELECT * FROM datacore.ollama_embed(ARRAY['a'], 'no-such-model');
-- a NaN in a vector, a vector of another dimension: an error, never part of a set
SELECT datacore.ollama_embed('__nan__');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM datacore.ollama_embed(ARRAY['one', '__nan__']);
SELECT * FROM datacore.ollama_embed(ARRAY['one', 'two', '__dimmismatch__']);
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER ollama OPTIONS (ADD embed_batch_size '2');
SELECT * FROM datacore.ollama_embed(ARRAY['one', 'two', '__dimmismatch__']);
-- the next chunk is already on its way when a bad one is read: it is
-- abandoned with the error, and the next call starts clean
ALTER SERVER ollama OPTIONS (SET embed_batch_size '1');
SELECT * FROM datacore.ollama_embed(ARRAY['one', '__nan__', 'three', 'four']);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM datacore.ollama_embed(ARRAY['one', 'two', 'three']);
ALTER SERVER ollama OPTIONS (DROP embed_batch_size);

-- installed models
SELECT name, model, modified_at, size, family, parameter_size, quantization_level,
	   details->>'format' AS format, length(digest) AS digest_len
FROM datacore.ollama_models() ORDER BY name;
SELECT count(*) FROM datacore.ollama_models(NULL);

-- running models: unload everything (keep_alive 0), then load one forever
ALTER SERVER ollama OPTIONS (ADD keep_alive '0');
SELECT datacore.ollama_generate_json('', 'llama3.2')->>'done_reason' AS done_reason;
SELECT datacore.ollama_embed('x', 'nomic-embed-text') IS NOT NULL AS unloaded,
	   datacore.ollama_embed('x', 'all-minilm') IS NOT NULL AS unloaded;
SELECT count(*) AS running FROM datacore.ollama_running();
ALTER SERVER ollama OPTIONS (SET keep_alive '-1');
SELECT datacore.ollama_generate_json('')->>'done_reason' AS done_reason;
ALTER SERVER ollama OPTIONS (DROP keep_alive);
SELECT name, model, size, size_vram, expires_at > now() AS expires_later,
	   context_length, details->>'family' AS family
FROM datacore.ollama_running();

-- show
SELECT s->'capabilities' AS capabilities,
	   s->'model_info'->'nomic-bert.embedding_length' AS embedding_length,
	   s->'details'->>'family' AS family, s ? 'modelfile' AS has_modelfile
FROM datacore.ollama_show('nomic-embed-text') s;
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_show()->'details'->>'family' AS default_model_family;
SELECT l->'body' AS body FROM dc_test.log('ollama') l;

-- a bearer token from the user mapping is sent; without one, nothing is
CREATE USER MAPPING FOR CURRENT_USER SERVER ollama OPTIONS (bearer_token 'regress-tok-1');
SELECT dc_test.clear_log('ollama');
SELECT datacore.ollama_generate('x') IS NOT NULL AS answered;
SELECT array_length(datacore.ollama_embed('x'), 1) AS dims;
SELECT l->>'path' AS path, l->'headers'->>'authorization' = 'Bearer regress-tok-1' AS bearer
FROM dc_test.log('ollama') l ORDER BY (l->>'seq')::int;
DROP USER MAPPING FOR CURRENT_USER SERVER ollama;

-- USAGE on the server is required
CREATE ROLE regress_ollama_user;
GRANT USAGE ON SCHEMA datacore TO regress_ollama_user;
SET ROLE regress_ollama_user;
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM datacore.ollama_embed(ARRAY['x']);
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER ollama TO regress_ollama_user;
SET ROLE regress_ollama_user;
SELECT datacore.ollama_generate('x');
SELECT count(*) FROM datacore.ollama_models();
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER ollama FROM regress_ollama_user;
REVOKE USAGE ON SCHEMA datacore FROM regress_ollama_user;
DROP ROLE regress_ollama_user;

\i test/regress/teardown.psql
