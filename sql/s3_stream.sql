-- JSON Lines / CSV objects streamed through a foreign table: memory stays
-- that of one object however many are read, a slow reader is not a slow
-- server (but a stalled server is caught), records are capped, and
-- remote text is checked before it becomes a value.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
SET search_path = datacore, public;
SET client_min_messages = warning;

-- leftovers of an interrupted earlier run
SELECT dc_test.s3_drop_bucket('regress-s3-stream');
SELECT s3_create_bucket('regress-s3-stream');

-- many small objects straight into the store, and their removal (see
-- test/servers/README.md, /_test/objects)
CREATE FUNCTION pg_temp.objects(method text, spec jsonb) RETURNS SETOF text
LANGUAGE sql AS $$
	SELECT dc_test.curl('s3', CASE WHEN method = 'POST'
		THEN '-X POST -H ''Content-Type: application/json'' --data-raw '''
			 || replace(spec::text, '''', '''\''''') || ''' http://127.0.0.1:{port}/_test/objects'
		ELSE '-X DELETE http://127.0.0.1:{port}/_test/objects?bucket=' || (spec->>'bucket') END)
$$;

-- 2,000 objects read one after the other: backend memory stays flat (each
-- object's requests, stream and buffers are freed when it is done)
SELECT pg_temp.objects('POST', '{"bucket": "regress-s3-stream", "prefix": "many/", "count": 2000,
	"content": "{\"id\": {n}, \"note\": \"a small record\"}\n"}');
CREATE FOREIGN TABLE regress_many (_key text, id int, note text)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'many/', format 'jsonl');
CREATE FUNCTION pg_temp.scan_memory(OUT objects int, OUT id_sum bigint, OUT growth bigint)
LANGUAGE plpgsql AS $$
DECLARE
	r record;
	base bigint;
	cur bigint;
BEGIN
	objects := 0;
	id_sum := 0;
	growth := 0;
	FOR r IN SELECT id FROM regress_many LOOP
		objects := objects + 1;
		id_sum := id_sum + r.id;
		IF objects % 100 = 0 THEN
			SELECT sum(total_bytes) INTO cur FROM pg_backend_memory_contexts;
			IF objects = 200 THEN
				base := cur;
			ELSIF objects > 200 THEN
				growth := greatest(growth, cur - base);
			END IF;
		END IF;
	END LOOP;
END $$;
SELECT objects, id_sum, growth < 1024 * 1024 AS memory_flat FROM pg_temp.scan_memory();
DROP FOREIGN TABLE regress_many;
SELECT pg_temp.objects('DELETE', '{"bucket": "regress-s3-stream"}');
SELECT s3_create_bucket('regress-s3-stream');

-- A slow reader is not a slow server: per-row work that makes the scan
-- take longer than timeout_ms is fine (only time spent waiting for the
-- server counts) ...
SELECT s3_put('regress-s3-stream', 'slow/big.jsonl',
			  string_agg(format('{"id": %s, "pad": "%s"}', g, repeat('x', 2000)), E'\n')) IS NOT NULL AS put
FROM generate_series(1, 2000) g;
CREATE FOREIGN TABLE regress_slow (id int, pad text)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'slow/', format 'jsonl');
ALTER SERVER minio OPTIONS (ADD timeout_ms '1000');
SELECT clock_timestamp() AS t0 \gset
SELECT count(pg_sleep(0.001)) AS rows, sum(id) FROM regress_slow;
SELECT clock_timestamp() - :'t0'::timestamptz > interval '1.5 seconds' AS longer_than_timeout;
-- ... but a server that stops sending in the middle of the object is
-- caught after timeout_ms without data
SELECT dc_test.fault('s3', '{"mode": "stall", "bytes": 100000, "path": "/regress-s3-stream/slow/"}');
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM regress_slow;
\echo :LAST_ERROR_SQLSTATE
SELECT clock_timestamp() - :'t0'::timestamptz < interval '4 seconds' AS caught_promptly;
-- and one that never sends the headers, too
SELECT dc_test.fault('s3', '{"mode": "hang", "path": "/regress-s3-stream/slow/"}');
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM regress_slow;
\echo :LAST_ERROR_SQLSTATE
SELECT clock_timestamp() - :'t0'::timestamptz < interval '4 seconds' AS caught_promptly;
SELECT dc_test.fault('s3', NULL);
ALTER SERVER minio OPTIONS (DROP timeout_ms);
SELECT count(*) FROM regress_slow;
DROP FOREIGN TABLE regress_slow;

-- records are capped by max_record_bytes (table option, else the server's,
-- else 64 MiB), checked at CREATE
CREATE FOREIGN TABLE regress_long (_line bigint, id int)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'long/', format 'jsonl', max_record_bytes '0');
CREATE FOREIGN TABLE regress_long (_line bigint, id int)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'long/', format 'jsonl', max_record_bytes 'lots');
ALTER SERVER minio OPTIONS (ADD max_record_bytes '1073741824');
SELECT s3_put('regress-s3-stream', 'long/a.jsonl',
			  format(E'{"id": 1}\n{"id": 2}\n{"id": 3, "pad": "%s"}\n{"id": 4}\n', repeat('y', 5000)));
CREATE FOREIGN TABLE regress_long (_line bigint, id int)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'long/', format 'jsonl', max_record_bytes '4096');
SELECT * FROM regress_long ORDER BY _line;
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE regress_long OPTIONS (SET max_record_bytes '8192');
SELECT * FROM regress_long ORDER BY _line;
ALTER FOREIGN TABLE regress_long OPTIONS (DROP max_record_bytes);
ALTER SERVER minio OPTIONS (ADD max_record_bytes '4096');
SELECT count(*) FROM regress_long;
ALTER SERVER minio OPTIONS (DROP max_record_bytes);
-- the cap holds for a line that never ends, too (no newline at all)
SELECT s3_put('regress-s3-stream', 'long/a.jsonl', repeat('z', 1000000));
ALTER FOREIGN TABLE regress_long OPTIONS (ADD max_record_bytes '100000');
SELECT count(*) FROM regress_long;
DROP FOREIGN TABLE regress_long;
-- a record far longer than one read: a quoted csv field with newlines and
-- doubled quotes across the read chunks
SELECT s3_put('regress-s3-stream', 'longcsv/a.csv',
			  format(E'id,note\n1,"%s"\n2,two\n', repeat(E'ab\n"",', 200000)));
CREATE FOREIGN TABLE regress_longcsv (_line bigint, id int, note text)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'longcsv/', format 'csv');
SELECT _line, id, length(note),
	   note = CASE id WHEN 1 THEN repeat(E'ab\n",', 200000) ELSE 'two' END AS same
FROM regress_longcsv ORDER BY _line;
DROP FOREIGN TABLE regress_longcsv;

-- remote text is checked before it becomes a value: a csv field with bytes
-- not valid in UTF8 ("1,a\xffb\xfe"), a jsonl line with a NUL byte
SELECT s3_put('regress-s3-stream', 'enc/a.csv', '\x69642c6e616d650a312c61ff62fe0a'::bytea);
CREATE FOREIGN TABLE regress_enc (_line bigint, id int, name text)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'enc/', format 'csv');
SELECT * FROM regress_enc;
\echo :LAST_ERROR_SQLSTATE
SELECT s3_put('regress-s3-stream', 'encj/a.jsonl', '\x7b226964223a20317d0a7b226964223a00327d0a'::bytea);
CREATE FOREIGN TABLE regress_encj (_line bigint, id int)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'encj/', format 'jsonl');
SELECT * FROM regress_encj;
\echo :LAST_ERROR_SQLSTATE
-- whole objects as text
CREATE FOREIGN TABLE regress_enc_raw (key text, etag text, last_modified timestamptz, content text)
	SERVER minio OPTIONS (bucket 'regress-s3-stream', prefix 'enc/');
SELECT key, content FROM regress_enc_raw;
\echo :LAST_ERROR_SQLSTATE
SELECT s3_get_text('regress-s3-stream', 'enc/a.csv');
\echo :LAST_ERROR_SQLSTATE
-- header values: ETag, Last-Modified, metadata
SELECT dc_test.fault('s3', '{"mode": "status", "status": 200, "headers": {"ETag": "\"a\u00ffb\""}, "times": 1}');
SELECT s3_head('regress-s3-stream', 'enc/a.csv');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "status", "status": 200, "headers": {"ETag": "\"a\u00ffb\""}, "times": 1}');
SELECT s3_put('regress-s3-stream', 'enc/b.txt', 'b'::text);
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "status", "status": 200, "headers": {"Last-Modified": "Tue, 01 Apr 2025 08:00:00 G\u00ffT"}, "times": 1}');
SELECT key, etag FROM regress_enc_raw WHERE key = 'enc/a.csv';
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "status", "status": 200, "headers": {"x-amz-meta-note": "caf\u00e9"}, "times": 1}');
SELECT s3_head('regress-s3-stream', 'enc/a.csv')->'metadata';
\echo :LAST_ERROR_SQLSTATE
-- error bodies are shown cut and made safe, never raw
SELECT dc_test.fault('s3', '{"mode": "status", "status": 502, "body": "<html>bad \u00ff\u0001 gateway</html>", "body_encoding": "latin1", "times": 1}');
SELECT s3_get('regress-s3-stream', 'enc/a.csv');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', format('{"mode": "status", "status": 500, "body": "<Error><Code>%s</Code><Message>m</Message></Error>", "times": 1}', repeat('C', 100))::jsonb);
SELECT s3_get('regress-s3-stream', 'enc/a.csv');
\echo :LAST_ERROR_SQLSTATE
DROP FOREIGN TABLE regress_enc, regress_encj, regress_enc_raw;

SELECT pg_temp.objects('DELETE', '{"bucket": "regress-s3-stream"}');
\i test/regress/teardown.psql
