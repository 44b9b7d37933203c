-- Ollama client under faults: every stand-in fault switch, HTTP error
-- statuses, and replies that arrive as an NDJSON stream although
-- "stream": false was asked for.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
-- one failure after another: keep the circuit breaker (core_http) out of it
ALTER SERVER ollama OPTIONS (ADD breaker_threshold '0');

-- HTTP 500: the remote error text in DETAIL
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500, "times": 1}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
-- a runner failure the server reports with 500
SELECT datacore.ollama_generate('__midstream_error__');
\echo :LAST_ERROR_SQLSTATE
-- HTTP 400 with Ollama's own error object
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 400, "times": 1,
	"body": {"error": "invalid model name"}}');
SELECT datacore.ollama_chat('[{"role": "user", "content": "x"}]');
\echo :LAST_ERROR_SQLSTATE
-- 404 with a JSON error is an unknown model; a bare 404 is a missing endpoint
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 404, "times": 1,
	"body": {"error": "model ''llama3.2'' not found"}}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 404, "times": 1,
	"body": "404 page not found"}');
SELECT datacore.ollama_embed('x');
\echo :LAST_ERROR_SQLSTATE
-- 401 from an authenticating proxy
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 401, "times": 1,
	"body": {"error": "unauthorized"}}');
SELECT datacore.ollama_models();
\echo :LAST_ERROR_SQLSTATE
-- 503 (queue full)
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "times": 1,
	"body": {"error": "server busy, please try again.  maximum pending requests exceeded"}}');
SELECT datacore.ollama_embed('x');
\echo :LAST_ERROR_SQLSTATE

-- delay: within timeout_ms the answer arrives, beyond it the call fails
SELECT dc_test.fault('ollama', '{"mode": "delay", "ms": 100, "times": 1}');
SELECT datacore.ollama_generate('slow but fine');
ALTER SERVER ollama OPTIONS (ADD timeout_ms '200');
SELECT dc_test.fault('ollama', '{"mode": "delay", "ms": 1000, "times": 1}');
\set VERBOSITY terse
SELECT datacore.ollama_generate('too slow');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER ollama OPTIONS (DROP timeout_ms);
-- hang: statement_timeout cancels the call
SELECT dc_test.fault('ollama', '{"mode": "hang"}');
SET statement_timeout = '300ms';
SELECT * FROM datacore.ollama_embed(ARRAY['a', 'b']);
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT dc_test.fault('ollama', NULL);

-- drop, truncate: connection errors, never a half-read answer
\set VERBOSITY terse
SELECT dc_test.fault('ollama', '{"mode": "drop", "times": 1}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "truncate", "times": 1}');
SELECT datacore.ollama_generate('truncate me please');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "truncate", "times": 1}');
SELECT * FROM datacore.ollama_embed(ARRAY['a', 'b']);
\echo :LAST_ERROR_SQLSTATE
-- a stream that breaks off after some lines
SELECT datacore.ollama_generate('__midstream_drop__');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- oversize: the size cap
ALTER SERVER ollama OPTIONS (ADD max_response_bytes '100000');
SELECT dc_test.fault('ollama', '{"mode": "oversize", "bytes": 300000, "times": 1}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER ollama OPTIONS (DROP max_response_bytes);

-- malformed JSON
SELECT dc_test.fault('ollama', '{"mode": "malformed", "times": 1}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "malformed", "times": 1}');
SELECT datacore.ollama_embed('x');

-- well-formed replies that lack what the call needs
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"model": "llama3.2", "done": true}}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"model": "llama3.2", "done": true}}');
SELECT datacore.ollama_chat('[{"role": "user", "content": "x"}]');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"model": "nomic-embed-text"}}');
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"embeddings": [[0.5, 0.5]]}}');
SELECT * FROM datacore.ollama_embed(ARRAY['a', 'b']);
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"embeddings": [[0.5, "x"]]}}');
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"embeddings": [[]]}}');
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": "{\"embeddings\": [[0.5, 1e999]]}"}');
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"embeddings": [[0.5, 1e300]]}}');
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": [1, 2]}');
SELECT datacore.ollama_version();
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"models": {}}}');
SELECT * FROM datacore.ollama_models();
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"models": [1]}}');
SELECT * FROM datacore.ollama_running();
-- Embedding replies are read by a fast scanner that hands anything unusual
-- to the general JSON reader: both must give the same vectors.
-- Number forms, other members of every kind, whitespace: the fast path.
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E' {"model":"m","embeddings":[ [1e-3, -0.5,0 ,2E+2, 0.25e1] ],\n'
		 || E'"extra":{"a":[true,false,null,"q\\"u\\u00e9",{}],"b":[]},"n":-1.5}\n'));
SELECT datacore.ollama_embed('x');
-- an escaped member name: only the general reader decodes it
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embed\u0064ings": [[1e-3, -0.5, 0, 2E+2, 0.25e1]]}'));
SELECT datacore.ollama_embed('x');
-- the fast scanner converts short numbers itself and hands long ones and
-- large exponents to strtod: the same reals as the general reader's
\set nums '[[0.051031, -0.0123456789, 123456789012345678, 3.4028234663852886e38, 1.401298464324817e-45, 1e-30, -0, 7.0e-10, 0.30000001192092896, 33554433, 2.5E+21, 12345.678e-3, 0.000000000000000000001]]'
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": ' || :'nums' || '}'));
SELECT datacore.ollama_embed('x') AS fast \gset
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embed\u0064ings": ' || :'nums' || '}'));
SELECT datacore.ollama_embed('x') = :'fast'::real[] AS same, :'fast' AS vector;
-- a duplicated member, a number JSON does not allow, trailing garbage
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[1]], "embeddings": [[2]]}'));
SELECT datacore.ollama_embed('x');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[01.5]]}'));
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[1.5]]} x'));
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[1.5]], "note": "bad \q escape"}'));
SELECT datacore.ollama_embed('x');
-- a value too large for real, an error member next to vectors
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[1.5, 3.5e38]]}'));
SELECT datacore.ollama_embed('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[1.5]], "error": "runner crashed"}'));
SELECT datacore.ollama_embed('x');
\echo :LAST_ERROR_SQLSTATE
-- more vectors than inputs
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"embeddings": [[1.5], [2.5], [3.5]]}'));
SELECT * FROM datacore.ollama_embed(ARRAY['a', 'b']);

-- generate replies: the fast reader takes "response" from a plain object,
-- anything else goes to the general reader
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"model":"m","context":[1,2,3],"response":"caf\\u00e9 \\"ok\\"\\n","done":true}'));
SELECT datacore.ollama_generate('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"respons\u0065": "escaped name", "done": true}'));
SELECT datacore.ollama_generate('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"response": 42, "done": true}'));
SELECT datacore.ollama_generate('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"response": "a", "response": "b"}'));
SELECT datacore.ollama_generate('x');

-- an error object with status 200
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 200, "times": 1,
	"body": {"error": "model runner has unexpectedly stopped"}}');
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE

-- An NDJSON stream instead of one object: fragments are joined, the final
-- object supplies done_reason and the counts.
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"model":"llama3.2","response":"The ","done":false}\n'
		 || E'{"model":"llama3.2","response":"sky ","done":false}\n'
		 || E'{"model":"llama3.2","response":"is blue.","done":false}\n'
		 || E'{"model":"llama3.2","response":"","done":true,"done_reason":"stop","eval_count":3}\n'));
SELECT r->>'response' AS response, r->>'done_reason' AS done_reason, r->'eval_count' AS eval_count
FROM datacore.ollama_generate_json('x') r;
-- CRLF line ends, blank lines, no newline after the last object
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"response":"a","done":false}\r\n\r\n{"response":"b","done":false}\r\n'
		 || E'{"response":"c","done":true,"done_reason":"length"}'));
SELECT datacore.ollama_generate('x');
-- a chat stream: content fragments and tool calls are collected
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"message":{"role":"assistant","content":"Hel"},"done":false}\n'
		 || E'{"message":{"role":"assistant","content":"lo","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}\n'
		 || E'{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}\n'));
SELECT datacore.ollama_chat('[{"role": "user", "content": "x"}]');
-- an error line after some fragments (the real server keeps status 200)
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"response":"echo: ","done":false}\n'
		 || E'{"error":"an error was encountered while running the model: unexpected EOF"}\n'));
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
-- a stream that ends without its final object
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"response":"echo: ","done":false}\n{"response":"partial","done":false}\n'));
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
-- a line that is not JSON, a line that is not an object
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"response":"a","done":false}\n{"response": tru\n'));
SELECT datacore.ollama_generate('x');
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', E'{"response":"a","done":false}\n[1]\n'));
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE

-- \u0000 in a reply cannot become text (22021, as jsonb refuses it)
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"model":"llama3.2","response":"a\u0000b","done":true}'));
SELECT datacore.ollama_generate('x');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('ollama', jsonb_build_object('mode', 'status', 'status', 200, 'times', 1,
	'body', '{"model":"llama3.2","message":{"role":"assistant","content":"\u0000"},"done":true}'));
SELECT datacore.ollama_chat('[{"role": "user", "content": "x"}]');
\echo :LAST_ERROR_SQLSTATE

-- after all of that the connection is usable again
SELECT dc_test.fault('ollama', NULL);
SELECT datacore.ollama_generate('still here');
SELECT count(*) AS rows FROM datacore.ollama_embed(ARRAY['a', 'b', 'c']);

\i test/regress/teardown.psql
