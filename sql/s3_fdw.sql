-- Foreign tables over an S3 bucket: object listings with lazily fetched
-- content, key pushdown, INSERT/DELETE, and JSON Lines / CSV objects read
-- as rows.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
SET search_path = datacore, public;
SET client_min_messages = warning;

-- leftovers of an interrupted earlier run
SELECT dc_test.s3_drop_bucket('regress-s3-fdw');
SELECT s3_create_bucket('regress-s3-fdw');
SELECT count(s3_put('regress-s3-fdw', k, v)) FROM (VALUES
	('docs/a.txt', 'alpha'), ('docs/b.txt', 'bravo'), ('other/c.txt', 'charlie')) AS t(k, v);

CREATE FOREIGN TABLE regress_objects (key text, size bigint, etag text, last_modified timestamptz, content text)
	SERVER minio OPTIONS (bucket 'regress-s3-fdw');

-- the listing alone: one request, no object is read
SELECT dc_test.clear_log('s3');
SELECT o.key, o.size, o.etag = md5(v.body) AS etag_ok,
	   o.last_modified > now() - interval '10 minutes' AS recent
FROM regress_objects o JOIN (VALUES ('docs/a.txt', 'alpha'), ('docs/b.txt', 'bravo'), ('other/c.txt', 'charlie')) AS v(key, body)
	ON v.key = o.key
ORDER BY o.key;
SELECT l->>'method' AS method, l->>'path' AS path, l->'query'->>'prefix' AS prefix
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;

-- content is fetched per object only when used; LIKE 'prefix%' narrows the listing
SELECT dc_test.clear_log('s3');
SELECT key, content FROM regress_objects WHERE key LIKE 'docs/%' ORDER BY key;
SELECT l->>'method' AS method, l->>'path' AS path, l->'query'->>'prefix' AS prefix
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
EXPLAIN (COSTS OFF) SELECT key FROM regress_objects WHERE key LIKE 'docs/%';
EXPLAIN (COSTS OFF) SELECT key, content FROM regress_objects WHERE key LIKE 'docs/a\_%';

-- key = value: a HEAD (and a GET for content) instead of a listing
SELECT dc_test.clear_log('s3');
SELECT key, size FROM regress_objects WHERE key = 'docs/b.txt';
SELECT key, content FROM regress_objects WHERE key = 'other/c.txt';
SELECT key, content FROM regress_objects WHERE key = 'docs/missing';
SELECT l->>'method' AS method, l->>'path' AS path, l->'status' AS status
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
EXPLAIN (COSTS OFF) SELECT * FROM regress_objects WHERE key = 'docs/b.txt';
-- also with a parameter (a join, a prepared statement)
PREPARE get_obj(text) AS SELECT content FROM regress_objects WHERE key = $1;
EXECUTE get_obj('docs/a.txt');
CREATE TEMP TABLE wanted (k text);
INSERT INTO wanted VALUES ('docs/a.txt'), ('other/c.txt'), ('nope');
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT w.k, o.content FROM wanted w JOIN regress_objects o ON o.key = w.k ORDER BY w.k;
RESET enable_hashjoin;
RESET enable_mergejoin;

-- a table over a prefix sees only that prefix
CREATE FOREIGN TABLE regress_docs (key text, content bytea)
	SERVER minio OPTIONS (bucket 'regress-s3-fdw', prefix 'docs/');
SELECT key, content FROM regress_docs ORDER BY key;
SELECT dc_test.clear_log('s3');
SELECT key FROM regress_docs WHERE key = 'other/c.txt';
SELECT key FROM regress_docs WHERE key LIKE 'other/%';
SELECT count(*) AS requests FROM dc_test.log('s3');
EXPLAIN (COSTS OFF) SELECT key FROM regress_docs WHERE key LIKE 'other/%';

-- INSERT puts objects, DELETE deletes them
INSERT INTO regress_docs (key, content) VALUES ('docs/new.bin', '\xdeadbeef'), ('docs/empty', NULL);
SELECT key, content FROM regress_docs ORDER BY key;
INSERT INTO regress_docs (key, content) VALUES ('other/x', '\x00');
INSERT INTO regress_docs (key, content) VALUES (NULL, '\x00');
DELETE FROM regress_docs WHERE key = 'docs/new.bin';
DELETE FROM regress_objects WHERE key LIKE 'docs/%' AND size = 0;
SELECT key FROM regress_objects ORDER BY key;
UPDATE regress_objects SET content = 'x' WHERE key = 'docs/a.txt';
-- keys with empty or dot segments, through the table: INSERT, key = value
-- (HEAD and GET), a listing by prefix, DELETE
INSERT INTO regress_docs (key, content) VALUES ('docs//x', 'slash'), ('docs/../y', 'dots'), ('docs/', 'dir');
SELECT key, content FROM regress_docs WHERE key = 'docs/../y';
SELECT key, convert_from(content, 'UTF8') FROM regress_docs ORDER BY key COLLATE "C";
DELETE FROM regress_docs WHERE key IN ('docs//x', 'docs/../y', 'docs/');
SELECT key FROM regress_objects ORDER BY key;

-- columns must fit the format
CREATE FOREIGN TABLE regress_bad (key text, owner text) SERVER minio OPTIONS (bucket 'regress-s3-fdw');
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;
CREATE FOREIGN TABLE regress_bad (key text, size int) SERVER minio OPTIONS (bucket 'regress-s3-fdw');
SELECT * FROM regress_bad;
DROP FOREIGN TABLE regress_bad;
-- no bucket: refused when the table is created
CREATE FOREIGN TABLE regress_bad (key text) SERVER minio;
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_bad (key text) SERVER minio OPTIONS (bucket 'regress-s3-fdw', format 'xml');

-- JSON Lines: each line of each object is a row; fields by column name
SELECT s3_put('regress-s3-fdw', 'jsonl/1.jsonl', E'{"id": 1, "name": "ada", "tags": ["x"], "score": 1.5}\n{"id": 2, "name": "bob", "extra": true}\r\n\n{"id": 3, "tags": {"a": null}, "name": null}');
SELECT s3_put('regress-s3-fdw', 'jsonl/2.jsonl', E'{"id": 10, "name": "zed"}\n');
CREATE FOREIGN TABLE regress_jsonl (_key text, _line bigint, id int, name text, tags jsonb, score numeric)
	SERVER minio OPTIONS (bucket 'regress-s3-fdw', prefix 'jsonl/', format 'jsonl');
SELECT * FROM regress_jsonl ORDER BY _key, _line;
SELECT dc_test.clear_log('s3');
SELECT id, name FROM regress_jsonl WHERE _key = 'jsonl/2.jsonl';
SELECT l->>'method' AS method, l->>'path' AS path FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
SELECT count(*) FROM regress_jsonl WHERE _key = 'jsonl/none.jsonl';
SELECT s3_put('regress-s3-fdw', 'jsonl/3.jsonl', E'{"id": 4}\n{"id": 5,}\n');
SELECT * FROM regress_jsonl;
SELECT s3_put('regress-s3-fdw', 'jsonl/3.jsonl', E'[1, 2]\n');
SELECT * FROM regress_jsonl;
SELECT s3_put('regress-s3-fdw', 'jsonl/3.jsonl', E'{"id": 4}\n{"id": "four"}\n');
\set SHOW_CONTEXT errors
SELECT * FROM regress_jsonl;
\set SHOW_CONTEXT never
SELECT s3_delete('regress-s3-fdw', 'jsonl/3.jsonl');
INSERT INTO regress_jsonl (id) VALUES (1);

-- records are streamed: lines cross the read chunks, nothing is held whole
SELECT s3_put('regress-s3-fdw', 'jsonl/big.jsonl',
			  string_agg(format('{"id": %s, "name": "%s"}', g, repeat(md5(g::text), 3)), E'\n'))
FROM generate_series(1, 60000) g;
SELECT count(*), sum(id), count(DISTINCT name), max(length(name)) FROM regress_jsonl WHERE _key = 'jsonl/big.jsonl';
SELECT s3_delete('regress-s3-fdw', 'jsonl/big.jsonl');

-- CSV with a header: fields by header name, quotes and embedded newlines
SELECT s3_put('regress-s3-fdw', 'csv/a.csv', E'id,name,note\n1,ada,"hello, world"\n2,"bob ""b""","two\nlines"\r\n3,,\n');
CREATE FOREIGN TABLE regress_csv (_key text, _line bigint, note text, id int, name text)
	SERVER minio OPTIONS (bucket 'regress-s3-fdw', prefix 'csv/', format 'csv');
SELECT * FROM regress_csv ORDER BY id;
-- without a header, by position; another delimiter
SELECT s3_put('regress-s3-fdw', 'csv2/b.csv', E'7;seven;x\n8;eight\n');
CREATE FOREIGN TABLE regress_csv2 (id int, name text, _line bigint)
	SERVER minio OPTIONS (bucket 'regress-s3-fdw', prefix 'csv2/', format 'csv', header 'false', delimiter ';');
SELECT * FROM regress_csv2 ORDER BY id;
-- a delimiter that is not one character is refused when set, not at the scan
ALTER FOREIGN TABLE regress_csv2 OPTIONS (SET delimiter ';;');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM regress_csv2;

-- privileges: scanning needs USAGE on the server
CREATE ROLE regress_s3_fdw_user;
GRANT USAGE ON SCHEMA datacore TO regress_s3_fdw_user;
GRANT SELECT ON regress_objects TO regress_s3_fdw_user;
SET ROLE regress_s3_fdw_user;
SELECT key FROM regress_objects;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER minio TO regress_s3_fdw_user;
SET ROLE regress_s3_fdw_user;
SELECT key FROM regress_objects ORDER BY key;
RESET ROLE;
REVOKE ALL ON regress_objects FROM regress_s3_fdw_user;
REVOKE USAGE ON FOREIGN SERVER minio FROM regress_s3_fdw_user;
REVOKE USAGE ON SCHEMA datacore FROM regress_s3_fdw_user;
DROP ROLE regress_s3_fdw_user;

DROP FOREIGN TABLE regress_objects, regress_docs, regress_jsonl, regress_csv, regress_csv2;
DO $$
BEGIN
	PERFORM s3_delete('regress-s3-fdw', key) FROM s3_list('regress-s3-fdw');
END $$;
SELECT s3_delete_bucket('regress-s3-fdw');
\i test/regress/teardown.psql
