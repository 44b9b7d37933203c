-- Qdrant SQL functions against the stand-in: collections, points, search,
-- ids, errors, privileges and what went over the wire.
\i test/regress/setup.psql
SET search_path = datacore, public;
SET client_min_messages = warning;

-- a clean slate for the collections this test uses
SELECT qdrant_drop_collection(c, if_exists => true)
  FROM unnest(ARRAY['regress_fn', 'regress_fn_euclid']) c;

-- collections
SELECT qdrant_create_collection('regress_fn', 3);
SELECT qdrant_create_collection('regress_fn', 3);                 -- duplicate
SELECT qdrant_create_collection('regress_fn', 3, if_not_exists => true);
-- a creator that loses the race (the existence check says no, the PUT
-- finds it) gets false, and what is allocated after that call must not
-- live in ErrorContext, which the next caught error resets
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "path": "/collections/regress_fn/exists",
  "body": "{\"result\": {\"exists\": false}, \"status\": \"ok\", \"time\": 0}"}');
SELECT length(qdrant_create_collection('regress_fn', 3, if_not_exists => true)::text
              || repeat('x', 4000000)) AS created_and_more;
SELECT total_bytes < 1000000 AS error_context_small
  FROM pg_backend_memory_contexts WHERE name = 'ErrorContext';
SELECT qdrant_create_collection('regress_fn_euclid', 2, 'euclid');
SELECT qdrant_create_collection('regress_bad', 3, 'Hamming');
SELECT qdrant_create_collection('regress_bad', 0);
SELECT qdrant_create_collection('', 3);
SELECT c FROM qdrant_collections() c WHERE c LIKE 'regress_fn%';
SELECT info->'config'->'params'->'vectors' AS vectors, info->'points_count' AS points
  FROM qdrant_collection_info('regress_fn') info;
SELECT qdrant_collection_info('regress_missing');
SELECT qdrant_drop_collection('regress_missing');
SELECT qdrant_drop_collection('regress_missing', if_exists => true);

-- what was sent: wait=true unless asked otherwise, ids in canonical form.
-- (With only untyped literals, the id needs a cast: the batch form
-- qdrant_upsert(text, jsonb, boolean, name) makes such a call ambiguous.)
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_upsert('regress_fn', 1, '{1,0,0}', '{"lang": "en", "n": 1}');
SELECT qdrant_upsert('regress_fn', '2'::text, '{0,1,0}', '{"lang": "de", "n": 2}');
SELECT qdrant_upsert('regress_fn', '5C56C793-69F3-4FBF-87E6-C4BF54C28C26'::uuid, '{0,0,1}');
SELECT qdrant_upsert('regress_fn', '{5c56c79369f34fbf87e6c4bf54c28c27}', '{1,1,0}', wait => false);
SELECT l->>'method' AS method, l->>'path' AS path, l->'query' AS query, l->'body' AS body
  FROM dc_test.log('qdrant') l;

-- batch upsert: one request
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_upsert('regress_fn', '[{"id": 10, "vector": [1, 0.5, 0], "payload": {"lang": "en", "n": 10}},
                                     {"id": 11, "vector": [0.5, 1, 0], "payload": {"lang": "fr", "n": 11}},
                                     {"id": "00000000-0000-0000-0000-00000000000c", "vector": [0, 0.5, 1]}]');
SELECT count(*) AS requests, min(jsonb_array_length(l->'body'->'points')) AS points
  FROM dc_test.log('qdrant') l;
SELECT qdrant_upsert('regress_fn', '[]'::jsonb);
SELECT qdrant_count('regress_fn');
SELECT qdrant_count('regress_fn', '{"must": [{"key": "lang", "match": {"value": "en"}}]}');

-- batch upsert from arrays (the path rag_sync takes): one request; vectors
-- has one row per id, each element written in the shortest form that reads
-- back as the same real
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_upsert('regress_fn', ARRAY['40', '"00000000-0000-0000-0000-000000000029"']::jsonb[],
					 ARRAY[[0.1, 1e-45, 3.4028235e38], [-0.33333334, 16777217, 1]]::real[],
					 ARRAY['{"lang": "en"}', NULL]::jsonb[]);
SELECT l->>'path' AS path, l->'body' AS body FROM dc_test.log('qdrant') l;
SELECT array_agg(translate(p->>'vector', '[]', '{}')::real[] ORDER BY o)
	   = ARRAY[[0.1, 1e-45, 3.4028235e38], [-0.33333334, 16777217, 1]]::real[] AS same_reals
  FROM dc_test.log('qdrant') l, jsonb_array_elements(l->'body'->'points') WITH ORDINALITY x(p, o);
SELECT id, payload FROM qdrant_get('regress_fn', ARRAY['40', '00000000-0000-0000-0000-000000000029']) ORDER BY id;
SELECT qdrant_upsert('regress_fn', '{}'::jsonb[], '{}'::real[]);
-- everything is checked before anything is sent
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_upsert('regress_fn', ARRAY['41', '42']::jsonb[], ARRAY[1, 0, 0]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '42']::jsonb[], ARRAY[[1, 0, 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41']::jsonb[], ARRAY[[1, 0, 0]]::real[], ARRAY['{}', '{}']::jsonb[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '"42"']::jsonb[], ARRAY[[1, 0, 0], [0, 1, 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '-42']::jsonb[], ARRAY[[1, 0, 0], [0, 1, 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '[42]']::jsonb[], ARRAY[[1, 0, 0], [0, 1, 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', NULL]::jsonb[], ARRAY[[1, 0, 0], [0, 1, 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '42']::jsonb[], ARRAY[[1, 0, 0], [0, NULL, 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '42']::jsonb[], ARRAY[[1, 0, 0], [0, 'NaN', 0]]::real[]);
SELECT qdrant_upsert('regress_fn', ARRAY['41', '42']::jsonb[], ARRAY[[1, 0, 0], [0, 1, 0]]::real[],
					 ARRAY['{}', '[1]']::jsonb[]);
SELECT qdrant_upsert('regress_fn', '{}'::jsonb[], ARRAY[[1, 0, 0]]::real[]);
SELECT count(*) AS requests FROM dc_test.log('qdrant') l;
SELECT qdrant_upsert('regress_fn', ARRAY['41']::jsonb[], ARRAY[[1, 0]]::real[]);
SELECT qdrant_delete('regress_fn', ARRAY['40', '00000000-0000-0000-0000-000000000029']);

-- ids: u64 or UUID only, checked before anything is sent
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_upsert('regress_fn', '-1'::text, '{1,0,0}');
SELECT qdrant_upsert('regress_fn', -1::bigint, '{1,0,0}');
SELECT qdrant_upsert('regress_fn', '18446744073709551616'::text, '{1,0,0}');
SELECT qdrant_upsert('regress_fn', '1.5'::text, '{1,0,0}');
SELECT qdrant_upsert('regress_fn', 'doc-1'::text, '{1,0,0}');
SELECT qdrant_upsert('regress_fn', '[{"id": "42", "vector": [1, 0, 0]}]');
SELECT qdrant_upsert('regress_fn', '[{"id": -3, "vector": [1, 0, 0]}]');
SELECT qdrant_upsert('regress_fn', '[{"id": 1}]');
SELECT count(*) AS requests_sent FROM dc_test.log('qdrant');

-- other argument errors
SELECT qdrant_upsert('regress_fn', 3, '{1,NULL,0}');
SELECT qdrant_upsert('regress_fn', 3, '{}');
SELECT qdrant_upsert('regress_fn', 3, '{1,0,0}', '[1]');
SELECT qdrant_upsert('regress_fn', 3, NULL::real[]);
SELECT qdrant_search('regress_fn', '{1,0,0}', 0);
SELECT qdrant_search('regress_fn', '{1,0,0}', filter => '[]');

-- wrong dimension: Qdrant's 400 as a clear error
SELECT qdrant_upsert('regress_fn', 3, '{1,0}');
SELECT * FROM qdrant_search('regress_fn', '{1,0,0,0}');
-- missing collection
SELECT qdrant_upsert('regress_missing', 3, '{1,0}');

-- search: best first, filter passed through
SELECT id, round(score::numeric, 4) AS score, payload FROM qdrant_search('regress_fn', '{1,0,0}', 3);
SELECT dc_test.clear_log('qdrant');
SELECT id, payload FROM qdrant_search('regress_fn', '{1,0,0}', 10,
	'{"must": [{"key": "lang", "match": {"value": "en"}}]}');
SELECT l->>'path' AS path, (l->'body') - 'query'::text AS body, jsonb_array_length(l->'body'->'query') AS dim
  FROM dc_test.log('qdrant') l;
-- Euclid: smallest distance first
SELECT qdrant_upsert('regress_fn_euclid', '[{"id": 1, "vector": [0, 0]}, {"id": 2, "vector": [3, 4]}]');
SELECT id, score FROM qdrant_search('regress_fn_euclid', '{0,0}');

-- numbers keep their value both ways: integers past 2^53 up to 2^64-1,
-- decimals that need 17 digits; a string shaped like the marker for big
-- integers stays a string; the query vector goes out as real
SELECT qdrant_upsert('regress_fn', 30, '{0.1,0.2,0.3}',
	'{"price": 1234567.891, "ts": 1700000000.123, "b53": 9007199254740993, "max": 18446744073709551615, "min": -9223372036854775808, "third": 0.30000000000000004, "mark": "\u001fu64:42"}');
SELECT qdrant_upsert('regress_fn', '[{"id": 31, "vector": [0.1, 0.2, 0.3],
	"payload": {"price": 1234567.891, "ts": 1700000000.123, "b53": 9007199254740993, "max": 18446744073709551615, "min": -9223372036854775808, "third": 0.30000000000000004, "mark": "\u001fu64:42"}}]');
SELECT id, vector, payload FROM qdrant_get('regress_fn', ARRAY[30, 31]) ORDER BY id;
SELECT dc_test.clear_log('qdrant');
SELECT id, payload FROM qdrant_search('regress_fn', '{0.1,0.2,0.3}', 2,
	'{"must": [{"has_id": [30, 31]}], "must_not": [{"key": "price", "range": {"lt": 1234567.891}}]}') ORDER BY id;
SELECT l->'body'->'query' AS query, l->'body'->'filter' AS filter FROM dc_test.log('qdrant') l;
-- a reply's reals keep their form and digits
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "body": "{\"result\": [{\"id\": 30, \"payload\": {\"r\": 2.0, \"e\": 1.5e-7, \"d\": 0.1, \"p\": 1234567.891}}], \"status\": \"ok\", \"time\": 0}"}');
SELECT payload FROM qdrant_get('regress_fn', ARRAY[30]);
-- \u0000 in a reply cannot become text or jsonb
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "body": "{\"result\": [{\"id\": 30, \"payload\": {\"s\": \"a\\u0000b\"}}], \"status\": \"ok\", \"time\": 0}"}');
SELECT payload FROM qdrant_get('regress_fn', ARRAY[30]);
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "body": "{\"result\": {\"collections\": [{\"name\": \"x\\u0000y\"}]}, \"status\": \"ok\", \"time\": 0}"}');
SELECT qdrant_collections();
SELECT qdrant_delete('regress_fn', ARRAY[30, 31]);

-- get and delete
SELECT * FROM qdrant_get('regress_fn', ARRAY[1, 2, 999]) ORDER BY id;
SELECT id, vector FROM qdrant_get('regress_fn', ARRAY['5c56c793-69f3-4fbf-87e6-c4bf54c28c26']::uuid[]);
SELECT qdrant_delete('regress_fn', ARRAY[1, 999]);
SELECT qdrant_delete('regress_fn', '{"must": [{"key": "lang", "match": {"value": "fr"}}]}'::jsonb);
SELECT qdrant_delete('regress_fn', NULL::jsonb);
SELECT qdrant_delete('regress_fn', ARRAY['nope']);
SELECT id FROM qdrant_get('regress_fn', ARRAY[1, 2, 10, 11]) ORDER BY id;
SELECT qdrant_count('regress_fn');

-- ids above 2^63-1: a canned reply comes back intact, and such ids go out
-- as numbers the stand-in accepts (the exact request text is in qdrant_fdw)
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "body": "{\"result\": [{\"id\": 18446744073709551615, \"payload\": {\"big\": 18446744073709551615, \"huge\": 123456789012345678901234}, \"vector\": [1, 0, 0]}], \"status\": \"ok\", \"time\": 0}"}');
SELECT * FROM qdrant_get('regress_fn', ARRAY['18446744073709551615']);
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_delete('regress_fn', ARRAY['18446744073709551615', '9223372036854775807', '9223372036854775808']);
SELECT jsonb_array_length(l->'body'->'points') AS ids FROM dc_test.log('qdrant') l;

-- api-key from the user mapping, never shown
CREATE ROLE regress_qdrant_user;
GRANT USAGE ON SCHEMA datacore TO regress_qdrant_user;
SET ROLE regress_qdrant_user;
SELECT qdrant_count('regress_fn');                               -- no USAGE
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER qdrant TO regress_qdrant_user;
CREATE USER MAPPING FOR regress_qdrant_user SERVER qdrant OPTIONS (api_key 'regress-secret-key');
SELECT dc_test.clear_log('qdrant');
SET ROLE regress_qdrant_user;
SELECT qdrant_count('regress_fn');
RESET ROLE;
SELECT l->'headers'->>'api-key' AS api_key FROM dc_test.log('qdrant') l;
CREATE SERVER regress_qdrant_ollama FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url 'http://127.0.0.1:1');
SELECT qdrant_count('regress_fn', server => 'regress_qdrant_ollama');
SELECT qdrant_count('regress_fn', server => 'regress_nowhere');

-- faults: server errors, dropped connections, malformed and truncated replies
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 500, "times": 1}');
SELECT qdrant_count('regress_fn');
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 401, "times": 1, "body": "Must provide an API key or an Authorization bearer token"}');
SELECT qdrant_count('regress_fn');
-- (libcurl itself retries once when a reused connection is dropped)
SELECT dc_test.fault('qdrant', '{"mode": "drop", "times": 2}');
SELECT qdrant_count('regress_fn');
SELECT dc_test.fault('qdrant', '{"mode": "malformed", "times": 1}');
SELECT qdrant_count('regress_fn');
SELECT dc_test.fault('qdrant', '{"mode": "truncate", "times": 1}');
\set VERBOSITY terse
-- (the byte count in the detail depends on the reply's timing field)
SELECT qdrant_count('regress_fn');
\set VERBOSITY default
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1, "body": {"status": {"error": "Service internal error: boom"}, "time": 0}}');
SELECT qdrant_count('regress_fn');
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1, "body": {"result": {"count": -1}, "status": "ok"}}');
SELECT qdrant_count('regress_fn');
ALTER SERVER qdrant OPTIONS (ADD timeout_ms '300');
SELECT dc_test.fault('qdrant', '{"mode": "hang", "times": 1}');
SELECT qdrant_count('regress_fn');
ALTER SERVER qdrant OPTIONS (DROP timeout_ms);
SELECT dc_test.fault('qdrant', NULL);
SELECT qdrant_count('regress_fn');

-- A collection name is one path segment, also "." and ".." (sent as %2E,
-- and no path is ever normalised): they name collections that do not exist
-- instead of reaching /collections or /points.
SELECT dc_test.clear_log('qdrant');
SELECT qdrant_count('.');
SELECT qdrant_count('..');
SELECT qdrant_collection_info('.');
SELECT qdrant_search('..', '{1,0,0}');
SELECT l->>'method' AS method, l->>'path' AS decoded_path FROM dc_test.log('qdrant') l ORDER BY (l->>'seq')::int;

-- clean up
DROP USER MAPPING FOR regress_qdrant_user SERVER qdrant;
REVOKE ALL ON FOREIGN SERVER qdrant FROM regress_qdrant_user;
REVOKE ALL ON SCHEMA datacore FROM regress_qdrant_user;
DROP ROLE regress_qdrant_user;
DROP SERVER regress_qdrant_ollama;
SELECT qdrant_drop_collection('regress_fn'), qdrant_drop_collection('regress_fn_euclid');
