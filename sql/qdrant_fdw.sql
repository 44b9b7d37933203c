-- Qdrant foreign tables against the stand-in: paging, pushdown (checked in
-- the request log), similarity search, batched INSERT, UPDATE, DELETE,
-- RETURNING, EXPLAIN, ids, privileges and faults.
\i test/regress/setup.psql
SET search_path = datacore, public;
SET client_min_messages = warning;
SELECT qdrant_drop_collection(c, if_exists => true)
  FROM unnest(ARRAY['regress_ft', 'regress_ft_l2']) c;
SELECT qdrant_create_collection('regress_ft', 3);

-- what the request log shows of each request
CREATE FUNCTION regress_requests() RETURNS TABLE(method text, path text, body jsonb)
LANGUAGE sql AS $$
	SELECT l->>'method', l->>'path' || coalesce('?' || (SELECT string_agg(k || '=' || v, '&') FROM jsonb_each_text(l->'query') q(k, v)), ''),
		   CASE WHEN l->'body' ? 'query' THEN jsonb_set(l->'body', '{query}', '"<vector>"') ELSE l->'body' END
	FROM dc_test.log('qdrant') l
$$;

-- options are checked when the table is created
CREATE FOREIGN TABLE regress_bad (id bigint) SERVER qdrant OPTIONS (colection 'x');
CREATE FOREIGN TABLE regress_bad (id bigint) SERVER qdrant OPTIONS (page_size '0');
CREATE FOREIGN TABLE regress_bad (id bigint) SERVER qdrant OPTIONS (api_key 'x');

CREATE FOREIGN TABLE regress_docs (
	id bigint,
	vector real[],
	payload jsonb,
	score real,
	lang text,
	n integer,
	heading text OPTIONS (payload_key 'title')
) SERVER qdrant OPTIONS (collection 'regress_ft', batch_size '4', page_size '3');

-- columns of the wrong type for their role
CREATE FOREIGN TABLE regress_badtype (id bigint, vector float8[]) SERVER qdrant OPTIONS (collection 'regress_ft');
SELECT * FROM regress_badtype;
DROP FOREIGN TABLE regress_badtype;

-- INSERT: batches of batch_size points, one upsert each
EXPLAIN (VERBOSE, COSTS OFF)
INSERT INTO regress_docs (id, vector, lang, n, heading)
SELECT i, ARRAY[i, 10 - i, 1]::real[], CASE WHEN i % 2 = 0 THEN 'en' ELSE 'de' END, i, 'doc ' || i
  FROM generate_series(1, 10) i;
SELECT dc_test.clear_log('qdrant');
INSERT INTO regress_docs (id, vector, lang, n, heading)
SELECT i, ARRAY[i, 10 - i, 1]::real[], CASE WHEN i % 2 = 0 THEN 'en' ELSE 'de' END, i, 'doc ' || i
  FROM generate_series(1, 10) i;
SELECT method, path, jsonb_array_length(body->'points') AS points FROM regress_requests();
SELECT body->'points'->0 AS first_point FROM regress_requests() LIMIT 1;

-- full scan: pages of page_size through /points/scroll, following next_page_offset
SELECT dc_test.clear_log('qdrant');
SELECT id, lang, n, heading, vector, payload FROM regress_docs ORDER BY id;
SELECT method, path, body FROM regress_requests();

-- only what the query reads is asked for
SELECT dc_test.clear_log('qdrant');
SELECT count(*) FROM regress_docs;
SELECT body->'with_payload' AS with_payload, body->'with_vector' AS with_vector
  FROM regress_requests() LIMIT 1;

-- a LIMIT without ORDER BY sizes the first page
SELECT dc_test.clear_log('qdrant');
SELECT id FROM regress_docs LIMIT 2;
SELECT body FROM regress_requests();

-- id conditions: has_id, checked again locally (ids are sent in canonical form)
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, lang FROM regress_docs WHERE id = 3;
SELECT dc_test.clear_log('qdrant');
SELECT id, lang FROM regress_docs WHERE id = 3;
SELECT id FROM regress_docs WHERE id IN (1, 4, 99) ORDER BY id;
SELECT id FROM regress_docs WHERE 5 = id;
SELECT id FROM regress_docs WHERE id = ANY(NULL::bigint[]);
SELECT body->'filter' AS filter FROM regress_requests();
SELECT id FROM regress_docs WHERE id = -1;

-- payload conditions: sent as "must" filters and checked again locally
SELECT qdrant_upsert('regress_ft', 11, '{1,1,1}', '{"lang": ["en", "de"], "n": "11", "title": "eleven"}');
SELECT qdrant_upsert('regress_ft', 12, '{1,1,1}', '{"lang": "en", "n": 12, "title": {"text": "twelve"}, "meta": {"ok": true}}');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_docs WHERE payload @> '{"lang": "en"}';
SELECT dc_test.clear_log('qdrant');
SELECT id FROM regress_docs WHERE payload @> '{"lang": "en"}' ORDER BY id;
SELECT id FROM regress_docs WHERE payload @> '{"lang": ["en"]}' ORDER BY id;
SELECT id FROM regress_docs WHERE payload @> '{"meta": {"ok": true}}' ORDER BY id;
SELECT id FROM regress_docs WHERE payload->>'lang' = 'en' ORDER BY id;
SELECT id FROM regress_docs WHERE lang = 'de' AND n > 4 ORDER BY id;
SELECT id FROM regress_docs WHERE n = 11;
SELECT id, heading FROM regress_docs WHERE heading = 'doc 7' OR id = 12 ORDER BY id;
SELECT body->'filter' AS filter FROM regress_requests();
-- a payload value that does not fit its column is an error naming both
SELECT qdrant_upsert('regress_ft', 13, '{1,1,1}', '{"n": 2.5}');
SELECT id, n FROM regress_docs WHERE id = 13;
SELECT qdrant_delete('regress_ft', ARRAY[13]);
-- not sent: evaluated locally, still right
SELECT dc_test.clear_log('qdrant');
SELECT id FROM regress_docs WHERE lower(lang) = 'de' AND n < 4 ORDER BY id;
SELECT id FROM regress_docs WHERE lang = 'de' OR n = 2 ORDER BY id;
SELECT body->'filter' AS filter FROM regress_requests();

-- what a Qdrant filter cannot say is not sent, and what Qdrant answers
-- loosely is checked again: <> has no range, NaN no bound, char(n) ignores
-- trailing spaces; a JSON string "2" is 2 to an integer column and "yes" is
-- true to a boolean one, 12.0 is 12 to numeric and to jsonb; bounds go out
-- inclusive and with all their digits
SELECT qdrant_drop_collection('regress_ft_num', if_exists => true);
SELECT qdrant_create_collection('regress_ft_num', 1);
CREATE FOREIGN TABLE regress_nums (id bigint, vector real[], payload jsonb, n integer,
	x numeric, flag boolean, code char(4), lang text, price numeric, big numeric, ts float8)
  SERVER qdrant OPTIONS (collection 'regress_ft_num');
INSERT INTO regress_nums (id, vector, payload) VALUES
	(1, '{1}', '{"n": 1, "x": 12.0, "flag": true, "code": "ab  ", "price": 1234567.891}'),
	(2, '{1}', '{"n": "2", "x": 12, "flag": "yes", "code": "ab"}'),
	(3, '{1}', '{"n": 3, "x": 0.30000000000000004, "flag": false, "lang": ["en"]}'),
	(4, '{1}', '{}');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE n <> 1;
SELECT id FROM regress_nums WHERE n <> 1 ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE n > 1;
SELECT id FROM regress_nums WHERE n > 1 ORDER BY id;
SELECT id FROM regress_nums WHERE n = 2 ORDER BY id;
SELECT id FROM regress_nums WHERE x = 12 ORDER BY id;
SELECT id FROM regress_nums WHERE x > 0.3 ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE x < 'NaN';
SELECT id FROM regress_nums WHERE x < 'NaN' ORDER BY id;
SELECT id FROM regress_nums WHERE flag = true ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE code = 'ab';
SELECT id FROM regress_nums WHERE code = 'ab' ORDER BY id;
SELECT id FROM regress_nums WHERE payload @> '{"x": 12}' ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE lang = '["en"]';
SELECT id FROM regress_nums WHERE lang = '["en"]';
-- a parameter shows where its value goes
PREPARE regress_num_gt(int, bool) AS SELECT id FROM regress_nums WHERE n > $1 AND flag = $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE regress_num_gt(1, true);
EXECUTE regress_num_gt(1, true);
RESET plan_cache_mode;
DEALLOCATE regress_num_gt;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE n IS NULL OR NOT flag;
SELECT id FROM regress_nums WHERE n IS NULL OR NOT flag ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE n::text = '2';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_nums WHERE price >= 1234567.891;
SELECT id, price FROM regress_nums WHERE price >= 1234567.891;
SELECT id FROM regress_nums WHERE price > 1234567.891;
-- numbers keep their value both ways: integers past 2^53 up to 2^64-1,
-- decimals that need 17 digits; a string shaped like the marker for big
-- integers stays a string
INSERT INTO regress_nums (id, vector, payload) VALUES (5, '{1}',
	'{"price": 1234567.891, "ts": 1700000000.123, "big": 18446744073709551615, "b53": 9007199254740993, "min": -9223372036854775808, "third": 0.30000000000000004, "mark": "\u001fu64:42"}');
SELECT id, price, big, ts, payload FROM regress_nums WHERE id = 5;
SELECT id FROM regress_nums WHERE big = 18446744073709551615;
INSERT INTO regress_nums (id, vector, big, price) VALUES (6, '{1}', 18446744073709551615, 0.1);
SELECT id, big, price, payload FROM regress_nums WHERE id = 6;
SELECT id FROM regress_nums WHERE ts = 1700000000.123;
UPDATE regress_nums SET payload = payload || '{"n": 7}' WHERE id = 5;
SELECT payload FROM regress_nums WHERE id = 5;
DROP FOREIGN TABLE regress_nums;
SELECT qdrant_drop_collection('regress_ft_num');

-- parameters are evaluated at scan start
PREPARE regress_by_id(bigint) AS SELECT id, heading FROM regress_docs WHERE id = $1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE regress_by_id(4);
EXECUTE regress_by_id(4);
EXECUTE regress_by_id(6);
RESET plan_cache_mode;
DEALLOCATE regress_by_id;
-- and per rescan in a nested loop
SELECT d.id, d.heading FROM (VALUES (2), (9)) v(x)
  CROSS JOIN LATERAL (SELECT * FROM regress_docs WHERE id = v.x OFFSET 0) d ORDER BY 1;

-- similarity search: WHERE vector @@ <query> ORDER BY score DESC LIMIT k is one request
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, score FROM regress_docs WHERE vector @@ '{1,0,0}' AND lang = 'en' ORDER BY score DESC LIMIT 2;
SELECT dc_test.clear_log('qdrant');
SELECT id, round(score::numeric, 4) AS rounded FROM regress_docs
 WHERE vector @@ '{1,0,0}' AND lang = 'en' ORDER BY score DESC LIMIT 2;
SELECT method, path, body FROM regress_requests();
-- without LIMIT it pages through /points/query with offsets
SELECT dc_test.clear_log('qdrant');
SELECT count(*), min(score) > 0 AS scored FROM regress_docs WHERE vector @@ '{1,0,0}';
SELECT body->'limit' AS limit, body->'offset' AS offset FROM regress_requests();
-- the query vector may come from a subquery or a parameter
SELECT id FROM regress_docs WHERE vector @@ (SELECT vector FROM regress_docs WHERE id = 10)
 ORDER BY score DESC LIMIT 1;
PREPARE regress_near(real[]) AS
	SELECT id FROM regress_docs WHERE vector @@ $1 ORDER BY score DESC LIMIT 2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE regress_near('{0,1,0}');
EXECUTE regress_near('{0,1,0}');
RESET plan_cache_mode;
DEALLOCATE regress_near;
-- EXPLAIN ANALYZE counts the requests: four pages of three
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT id FROM regress_docs WHERE n <= 10;
-- a scan without a search has no score
SELECT count(score) FROM regress_docs;
-- the wrong direction for the collection's distance is caught
SELECT id FROM regress_docs WHERE vector @@ '{1,0,0}' ORDER BY score ASC LIMIT 3;
-- @@ has no meaning outside a Qdrant scan
SELECT id FROM regress_docs WHERE vector @@ '{1,0,0}' OR id = 1;
SELECT '{1}'::real[] @@ '{1}'::real[];
-- Euclid collections rank ascending
SELECT qdrant_create_collection('regress_ft_l2', 2, 'Euclid');
CREATE FOREIGN TABLE regress_l2 (id bigint, vector real[], score real) SERVER qdrant OPTIONS (collection 'regress_ft_l2');
INSERT INTO regress_l2 VALUES (1, '{0,0}'), (2, '{3,4}'), (3, '{1,1}');
SELECT id, score FROM regress_l2 WHERE vector @@ '{0,0}' ORDER BY score ASC LIMIT 2;
SELECT id, score FROM regress_l2 WHERE vector @@ '{0,0}' ORDER BY score DESC LIMIT 2;
-- wrong dimension
SELECT id FROM regress_l2 WHERE vector @@ '{0,0,0}' ORDER BY score LIMIT 1;

-- UPDATE: key columns merge into the payload, payload replaces it, vector goes to /points/vectors
EXPLAIN (VERBOSE, COSTS OFF) UPDATE regress_docs SET lang = 'fr' WHERE id = 1;
SELECT dc_test.clear_log('qdrant');
UPDATE regress_docs SET lang = 'fr', n = NULL WHERE id = 1 RETURNING id, lang, n, heading;
UPDATE regress_docs SET vector = '{0,0,9}' WHERE id = 2;
UPDATE regress_docs SET payload = '{"lang": "it", "extra": [1, 2]}', heading = 'new' WHERE id = 3;
SELECT method, path, body FROM regress_requests() WHERE method <> 'POST' OR path NOT LIKE '%scroll';
SELECT id, vector, payload FROM regress_docs WHERE id IN (1, 2, 3) ORDER BY id;
UPDATE regress_docs SET id = 100 WHERE id = 1;
UPDATE regress_docs SET score = 1 WHERE id = 1;

-- DELETE by id, with RETURNING
SELECT dc_test.clear_log('qdrant');
EXPLAIN (VERBOSE, COSTS OFF) DELETE FROM regress_docs WHERE id = 4 RETURNING id, lang, heading;
DELETE FROM regress_docs WHERE id = 4 RETURNING id, lang, heading;
DELETE FROM regress_docs WHERE lang = 'de' AND n > 6;
SELECT method, path, body FROM regress_requests() WHERE path LIKE '%delete%';
SELECT id FROM regress_docs ORDER BY id;

-- INSERT ... RETURNING goes one point at a time
SELECT dc_test.clear_log('qdrant');
INSERT INTO regress_docs (id, vector, lang) VALUES (20, '{1,2,3}', 'en'), (21, '{3,2,1}', NULL)
RETURNING id, lang, payload;
SELECT count(*) AS requests, max(jsonb_array_length(body->'points')) AS points FROM regress_requests();

-- COPY works too (PostgreSQL 15 sends COPY rows to foreign tables one by one)
SELECT dc_test.clear_log('qdrant');
COPY regress_docs (id, vector, lang) FROM STDIN;
22	{0,1,1}	en
23	{1,0,1}	de
\.
SELECT count(*) AS requests FROM regress_requests();
SELECT id, lang FROM regress_docs WHERE id IN (22, 23) ORDER BY id;

-- bad rows are rejected before anything of their batch is sent
SELECT dc_test.clear_log('qdrant');
INSERT INTO regress_docs (id, vector) VALUES (30, '{1,1,1}'), (NULL, '{1,1,1}');
INSERT INTO regress_docs (id, vector) VALUES (30, '{1,1,1}'), (31, NULL);
INSERT INTO regress_docs (id, vector, score) VALUES (30, '{1,1,1}', 0.5);
INSERT INTO regress_docs (id, vector) VALUES (-30, '{1,1,1}');
INSERT INTO regress_docs (id, vector, payload) VALUES (30, '{1,1,1}', '[1]');
SELECT count(*) AS requests FROM regress_requests();
INSERT INTO regress_docs (id, vector) VALUES (30, '{1,1}');

-- ids: text columns carry u64 above 2^63-1 and UUIDs
CREATE FOREIGN TABLE regress_ids (id text, vector real[]) SERVER qdrant OPTIONS (collection 'regress_ft');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_ids WHERE id = '18446744073709551615';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_ids WHERE id IN ('{5C56C793-69F3-4FBF-87E6-C4BF54C28C26}', '7');
INSERT INTO regress_ids VALUES ('5C56C793-69F3-4FBF-87E6-C4BF54C28C26', '{1,0,0}');
SELECT id FROM regress_ids WHERE id = '5c56c793-69f3-4fbf-87e6-c4bf54c28c26';
SELECT id FROM regress_ids WHERE id = 'not-an-id';
-- a text id compares as text: '0001' is sent as 1, but is not '1'
SELECT id FROM regress_ids WHERE id = '0001';
SELECT id FROM regress_ids WHERE id IN ('0001', '1');
SELECT id FROM regress_docs WHERE id = 0001;
DELETE FROM regress_ids WHERE id = '5c56c793-69f3-4fbf-87e6-c4bf54c28c26';
-- a u64 id in a reply, past what bigint holds
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "body": "{\"result\": {\"points\": [{\"id\": 18446744073709551615}], \"next_page_offset\": null}, \"status\": \"ok\", \"time\": 0}"}');
SELECT id FROM regress_ids;
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1,
  "body": "{\"result\": {\"points\": [{\"id\": 18446744073709551615}], \"next_page_offset\": null}, \"status\": \"ok\", \"time\": 0}"}');
SELECT id FROM regress_docs;

-- a table without an id column can be read and inserted into, not updated
CREATE FOREIGN TABLE regress_noid (vector real[], lang text) SERVER qdrant OPTIONS (collection 'regress_ft');
SELECT count(*) FROM regress_noid WHERE lang = 'en';
UPDATE regress_noid SET lang = 'x';

-- privileges: USAGE on the server is checked for the querying user
CREATE ROLE regress_qdrant_reader;
GRANT USAGE ON SCHEMA datacore TO regress_qdrant_reader;
GRANT SELECT ON regress_docs TO regress_qdrant_reader;
SET ROLE regress_qdrant_reader;
SELECT count(*) FROM regress_docs;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER qdrant TO regress_qdrant_reader;
SET ROLE regress_qdrant_reader;
SELECT count(*) FROM regress_docs WHERE id = 5;
DELETE FROM regress_docs WHERE id = 5;
RESET ROLE;

-- faults: a failing page ends the scan with an error
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 500, "times": 1}');
SELECT count(*) FROM regress_docs;
SELECT dc_test.fault('qdrant', '{"mode": "truncate", "times": 1}');
\set VERBOSITY terse
-- (the byte count in the detail depends on the reply's timing field)
SELECT count(*) FROM regress_docs;
\set VERBOSITY default
-- ... also when it is not the first page
BEGIN;
DECLARE regress_scan NO SCROLL CURSOR FOR SELECT id FROM regress_docs;
FETCH 3 FROM regress_scan;
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 503, "times": 1}');
FETCH 3 FROM regress_scan;
ROLLBACK;
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1, "body": {"result": {"points": 5}, "status": "ok"}}');
SELECT count(*) FROM regress_docs;
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 200, "times": 1, "body": {"result": {"points": [{"id": -4}]}, "status": "ok"}}');
SELECT count(*) FROM regress_docs;
SELECT dc_test.fault('qdrant', NULL);
SELECT count(*) FROM regress_docs;
CREATE FOREIGN TABLE regress_missing (id bigint) SERVER qdrant OPTIONS (collection 'regress_no_such');
SELECT * FROM regress_missing;

-- UPDATE and DELETE in batches of batch_size rows: 7 rows, batch_size 3,
-- so 3 requests per endpoint
SELECT qdrant_create_collection('regress_ft_batch', 2);
CREATE FOREIGN TABLE regress_batch (id bigint, vector real[], payload jsonb, lang text, n integer)
	SERVER qdrant OPTIONS (collection 'regress_ft_batch', batch_size '3');
INSERT INTO regress_batch (id, vector, lang, n) SELECT i, ARRAY[i, 1], 'en', i FROM generate_series(1, 7) i;
SELECT dc_test.clear_log('qdrant');
-- the same payload for every row: one payload write names the batch's points
UPDATE regress_batch SET lang = 'fr';
-- a payload per row: the batch's writes as the operations of one /points/batch
UPDATE regress_batch SET n = id * 10 WHERE id > 1 RETURNING id, lang, n;
UPDATE regress_batch SET vector = ARRAY[1, id] WHERE id <= 4;
SELECT method, path, body FROM regress_requests() WHERE path NOT LIKE '%scroll';
SELECT id, vector, payload FROM regress_batch ORDER BY id;
SELECT dc_test.clear_log('qdrant');
DELETE FROM regress_batch WHERE id > 2 RETURNING id, lang, n;
SELECT method, path, body FROM regress_requests() WHERE path NOT LIKE '%scroll';
SELECT id FROM regress_batch ORDER BY id;
-- requests go in the order of the rows: a data-modifying CTE's queued rows
-- go before another table's write
CREATE FOREIGN TABLE regress_batch2 (id bigint, lang text)
	SERVER qdrant OPTIONS (collection 'regress_ft_batch', batch_size '3');
SELECT dc_test.clear_log('qdrant');
WITH u AS (UPDATE regress_batch SET lang = 'de' WHERE id = 1 RETURNING id)
DELETE FROM regress_batch2 WHERE id = (SELECT id FROM u);
SELECT method, path, body FROM regress_requests() WHERE path NOT LIKE '%scroll';
SELECT id, lang FROM regress_batch ORDER BY id;
-- row triggers see every row written when they fire: one row per request
INSERT INTO regress_batch (id, vector, lang) SELECT i, ARRAY[i, 1], 'en' FROM generate_series(1, 4) i;
CREATE FUNCTION regress_batch_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'point % written: % requests so far', OLD.id,
		(SELECT count(*) FROM regress_requests() WHERE path NOT LIKE '%scroll');
	RETURN NULL;
END $$;
CREATE TRIGGER regress_batch_after AFTER DELETE ON regress_batch
	FOR EACH ROW EXECUTE FUNCTION regress_batch_trigger();
SELECT dc_test.clear_log('qdrant');
SET client_min_messages = notice;
DELETE FROM regress_batch WHERE id > 1;
SET client_min_messages = warning;
SELECT count(*) AS requests FROM regress_requests() WHERE path NOT LIKE '%scroll';
DROP TRIGGER regress_batch_after ON regress_batch;
-- a failed batch fails the statement; the batches before it are done
INSERT INTO regress_batch (id, vector, lang) SELECT i, ARRAY[i, 1], 'en' FROM generate_series(1, 7) i;
SELECT dc_test.clear_log('qdrant');
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 500, "times": 1, "after": 1,
  "path": "/collections/regress_ft_batch/points/payload"}');
UPDATE regress_batch SET lang = 'it';
SELECT dc_test.fault('qdrant', NULL);
SELECT count(*) AS requests FROM regress_requests() WHERE path LIKE '%payload%';
SELECT lang, count(*) FROM regress_batch GROUP BY lang ORDER BY lang;
DROP FOREIGN TABLE regress_batch, regress_batch2;
DROP FUNCTION regress_batch_trigger();
SELECT qdrant_drop_collection('regress_ft_batch');

-- clean up
DROP FOREIGN TABLE regress_docs, regress_l2, regress_ids, regress_noid, regress_missing;
REVOKE ALL ON FOREIGN SERVER qdrant FROM regress_qdrant_reader;
REVOKE ALL ON SCHEMA datacore FROM regress_qdrant_reader;
DROP ROLE regress_qdrant_reader;
DROP FUNCTION regress_requests();
SELECT qdrant_drop_collection('regress_ft'), qdrant_drop_collection('regress_ft_l2');
