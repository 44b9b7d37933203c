-- S3 multipart uploads (with abort on any failure) and the fault switches
-- of the S3 front: error statuses, retries, dropped and cut connections,
-- malformed XML, a server that never answers.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
SET search_path = datacore, public;
SET client_min_messages = warning;

-- leftovers of an interrupted earlier run
SELECT dc_test.s3_drop_bucket('regress-s3-mp');
SELECT s3_create_bucket('regress-s3-mp');
SELECT s3_put('regress-s3-mp', 'small.txt', 'small object');

-- the request log of a multipart upload, without the random upload id
CREATE TEMP VIEW mp_log AS
	SELECT (l->>'seq')::int AS seq, l->>'method' AS method,
		   CASE WHEN l->'query' ? 'uploads' THEN 'create'
				WHEN l->'query' ? 'partNumber' THEN 'part ' || (l->'query'->>'partNumber')
				WHEN l->'query' ? 'uploadId' AND l->>'method' = 'POST' THEN 'complete'
				WHEN l->'query' ? 'uploadId' THEN 'abort'
				ELSE '' END AS step,
		   l->'body'->'bytes' AS bytes, l->'status' AS status,
		   l->'headers'->>'content-type' AS content_type, l->'query'->>'uploadId' AS upload_id
	FROM dc_test.log('s3') l;
-- one part at a time until the parallel section below, so that the order
-- of the request log is fixed
ALTER SERVER minio OPTIONS (ADD parallel_parts '1');

-- multipart: a body above multipart_threshold (default 16 MiB) goes up in
-- parts of part_size (default 8 MiB), each signed with its own hash
CREATE TEMP TABLE big AS
	SELECT convert_to(string_agg(md5(g::text), '' ORDER BY g), 'UTF8') AS body
	FROM generate_series(1, 557100) g;
SELECT length(body) AS bytes, length(body) > 16 * 1024 * 1024 AS over_16mib FROM big;
SELECT dc_test.clear_log('s3');
SELECT s3_put('regress-s3-mp', 'big/one', body) IS NOT NULL AS put FROM big;
SELECT method, step, bytes, status, content_type FROM mp_log ORDER BY seq;
SELECT count(DISTINCT upload_id) AS one_upload_id FROM mp_log;
SELECT md5(s3_get('regress-s3-mp', 'big/one')) = md5(body) AS same_content,
	   (s3_head('regress-s3-mp', 'big/one')->>'size')::bigint = length(body) AS same_size FROM big;
-- options move the threshold and the part size (5 MiB minimum each)
ALTER SERVER minio OPTIONS (ADD multipart_threshold '5242880', ADD part_size '5242880');
SELECT dc_test.clear_log('s3');
SELECT s3_put('regress-s3-mp', 'big/two', substr(body, 1, 6 * 1024 * 1024)) IS NOT NULL AS put FROM big;
SELECT method, step, bytes, status FROM mp_log ORDER BY seq;
SELECT md5(s3_get('regress-s3-mp', 'big/two')) = md5(substr(body, 1, 6 * 1024 * 1024)) AS same_content FROM big;
ALTER SERVER minio OPTIONS (SET part_size '1000');
ALTER SERVER minio OPTIONS (DROP multipart_threshold, DROP part_size);

-- A failed part aborts the upload before the error comes back: the fault
-- lets the create through and fails the next request, the first part.
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "status", "status": 500, "after": 1, "times": 1}');
SELECT s3_put('regress-s3-mp', 'big/failed', body) FROM big;
\echo :LAST_ERROR_SQLSTATE
SELECT method, step, status FROM mp_log ORDER BY seq;
SELECT s3_head('regress-s3-mp', 'big/failed') IS NULL AS no_object;
-- S3 can report a failed completion inside a 200: that is an error too,
-- and the upload is aborted (create and the one part pass, the complete
-- gets the error)
ALTER SERVER minio OPTIONS (ADD multipart_threshold '5242880');
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "status", "status": 200, "code": "InternalError", "after": 2, "times": 1}');
SELECT s3_put('regress-s3-mp', 'big/late', substr(body, 1, 6 * 1024 * 1024)) FROM big;
\echo :LAST_ERROR_SQLSTATE
SELECT method, step, status FROM mp_log ORDER BY seq;
-- a statement_timeout in the middle of the upload aborts it too
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "delay", "ms": 1000, "times": 2}');
SET statement_timeout = '1500ms';
SELECT s3_put('regress-s3-mp', 'big/cancelled', substr(body, 1, 6 * 1024 * 1024)) FROM big;
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT pg_sleep(0.6);
SELECT method, step, status FROM mp_log ORDER BY seq;
SELECT s3_head('regress-s3-mp', 'big/cancelled') IS NULL AS no_object;
-- After a cancel the abort is a clean-up request with a short bound of its
-- own (3 s): a server that hangs then does not hold the cancelled
-- statement for timeout_ms (here 20 s).  The part hangs, statement_timeout
-- cancels it, the abort hangs too and gives up with a WARNING.
ALTER SERVER minio OPTIONS (ADD timeout_ms '20000');
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "hang", "after": 1}');
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '500ms';
SELECT s3_put('regress-s3-mp', 'big/hung', substr(body, 1, 6 * 1024 * 1024)) FROM big;
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 seconds' AS cancel_bounded;
SELECT dc_test.fault('s3', NULL);
ALTER SERVER minio OPTIONS (DROP timeout_ms);
SELECT method, step, status FROM mp_log ORDER BY seq;
-- a failed create leaves nothing to abort
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "status", "status": 503, "times": 1}');
SELECT s3_put('regress-s3-mp', 'big/late', substr(body, 1, 6 * 1024 * 1024)) FROM big;
\echo :LAST_ERROR_SQLSTATE
SELECT method, step, status FROM mp_log ORDER BY seq;
ALTER SERVER minio OPTIONS (DROP multipart_threshold);
SELECT s3_head('regress-s3-mp', 'big/late') IS NULL AS no_object;

-- keys with empty or dot segments: create, part and complete all sign the
-- literal path
ALTER SERVER minio OPTIONS (ADD multipart_threshold '5242880');
CREATE TEMP TABLE six (key text);
INSERT INTO six VALUES ('dir/'), ('a//b'), ('/x'), ('x/'), ('a/./b'), ('a/../b');
SELECT dc_test.clear_log('s3');
SELECT key, s3_put('regress-s3-mp', key, substr(body, 1, 5 * 1024 * 1024 + 1)) = s3_head('regress-s3-mp', key)->>'etag' AS put_ok,
	   md5(s3_get('regress-s3-mp', key)) = md5(substr(body, 1, 5 * 1024 * 1024 + 1)) AS same_content
FROM six, big;
SELECT method, step, status, count(*) FROM mp_log GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT count(s3_delete('regress-s3-mp', key)) FROM six;
-- a completion answer with an empty <ETag> (Ceph's radosgw 16.2 sends
-- one): the ETag comes from a HEAD, never empty
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "blank_etag", "after": 2, "times": 1}');
SELECT s3_put('regress-s3-mp', 'big/blank', substr(body, 1, 5 * 1024 * 1024 + 1)) AS etag FROM big \gset
SELECT length(:'etag') AS etag_length, :'etag' = s3_head('regress-s3-mp', 'big/blank')->>'etag' AS etag_ok;
SELECT method, step, status FROM mp_log WHERE seq <= 4 ORDER BY seq;
ALTER SERVER minio OPTIONS (DROP multipart_threshold);
DROP TABLE six;

-- parallel parts (parallel_parts, default 4): the three parts of "big" are
-- in flight together, so three parts each delayed by 1.5 s take about
-- 1.5 s, not 4.5 s
ALTER SERVER minio OPTIONS (DROP parallel_parts);
ALTER SERVER minio OPTIONS (ADD parallel_parts '0');
ALTER SERVER minio OPTIONS (ADD parallel_parts '9');
-- the upload is gone when a signed AbortMultipartUpload of its id gets 404
CREATE FUNCTION pg_temp.upload_status(key text, upload_id text) RETURNS text
LANGUAGE sql AS $$
	SELECT string_agg(line, '') FROM dc_test.curl('s3', format(
		'-o /dev/null -w %%{http_code} -X DELETE --aws-sigv4 aws:amz:us-east-1:s3 --user %s:%s '
		'-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" '
		'"http://127.0.0.1:{port}/regress-s3-mp/%s?uploadId=%s"',
		(SELECT value FROM dc_test.secrets WHERE name = 's3_access_key'),
		(SELECT value FROM dc_test.secrets WHERE name = 's3_secret_key'), key, upload_id)) line
$$;
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "delay", "ms": 1500, "after": 1, "times": 3}');
SELECT clock_timestamp() AS t0 \gset
SELECT s3_put('regress-s3-mp', 'big/parallel', body) IS NOT NULL AS put FROM big;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3.5 seconds' AS parts_overlapped;
SELECT step, status, count(*) FROM mp_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT md5(s3_get('regress-s3-mp', 'big/parallel')) = md5(body) AS same_content FROM big;
-- a failing part cancels the parts in flight and aborts the upload; what
-- the cancelled parts left in the log depends on timing, so only the
-- steps are shown
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "status", "status": 500, "after": 2, "times": 1}');
SELECT s3_put('regress-s3-mp', 'big/parallel-failed', body) FROM big;
\echo :LAST_ERROR_SQLSTATE
SELECT bool_or(step = 'create') AS created, bool_or(status::text = '500') AS part_failed,
	   bool_or(step = 'complete') AS completed, bool_or(step = 'abort') AS aborted,
	   count(DISTINCT upload_id) AS upload_ids FROM mp_log;
SELECT pg_temp.upload_status('big/parallel-failed', upload_id) AS abort_again
	FROM mp_log WHERE upload_id IS NOT NULL LIMIT 1;
SELECT s3_head('regress-s3-mp', 'big/parallel-failed') IS NULL AS no_object;
-- a cancel while parts are in flight (each delayed by 5 s once its body is
-- in) ends at once and aborts the upload
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "delay", "ms": 5000, "after": 1, "times": 3}');
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '2s';
SELECT s3_put('regress-s3-mp', 'big/parallel-cancelled', body) FROM big;
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '4 seconds' AS cancel_prompt;
SELECT dc_test.fault('s3', NULL);
SELECT bool_or(step = 'complete') AS completed, bool_or(step = 'abort') AS aborted FROM mp_log;
SELECT pg_temp.upload_status('big/parallel-cancelled', upload_id) AS abort_again
	FROM mp_log WHERE upload_id IS NOT NULL LIMIT 1;
SELECT s3_head('regress-s3-mp', 'big/parallel-cancelled') IS NULL AS no_object;
SELECT s3_delete('regress-s3-mp', 'big/parallel');
DROP TABLE big;
DROP VIEW mp_log;

-- error statuses carry the S3 code
SELECT dc_test.fault('s3', '{"mode": "status", "status": 500, "times": 1}');
SELECT s3_get_text('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "status", "status": 503, "times": 1}');
SELECT s3_head('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "status", "status": 404, "code": "NoSuchBucket", "times": 1}');
SELECT s3_put('regress-s3-mp', 'x', 'x'::text);
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "status", "status": 403, "times": 1}');
SELECT s3_delete('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE
-- a non-S3 error body is shown as it came
SELECT dc_test.fault('s3', '{"mode": "status", "status": 502, "body": "<html>bad gateway</html>", "times": 1}');
SELECT s3_get('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE

-- with retries, 503 SlowDown is tried again
ALTER SERVER minio OPTIONS (ADD retries '2');
SELECT dc_test.clear_log('s3');
SELECT dc_test.fault('s3', '{"mode": "status", "status": 503, "times": 2, "retry_after": 0}');
SELECT s3_get_text('regress-s3-mp', 'small.txt');
SELECT dc_test.fault('s3', '{"mode": "status", "status": 503, "times": 2, "retry_after": 0}');
SELECT s3_put('regress-s3-mp', 'retried', 'retried'::text) = md5('retried') AS put_after_retries;
SELECT l->>'method' AS method, l->'status' AS status FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
ALTER SERVER minio OPTIONS (DROP retries);

-- broken connections and replies
-- (libcurl quietly retries a request whose reused keep-alive connection
-- was closed, so the fault drops two connections in a row)
SELECT dc_test.fault('s3', '{"mode": "drop", "times": 2}');
SELECT s3_get('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "drop", "times": 2}');
SELECT s3_put('regress-s3-mp', 'dropped', 'x'::text);
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', NULL);
SELECT s3_head('regress-s3-mp', 'dropped') IS NULL AS not_stored;
SELECT dc_test.fault('s3', '{"mode": "truncate", "times": 1}');
SELECT s3_get('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "malformed", "times": 1}');
SELECT * FROM s3_list('regress-s3-mp');
\echo :LAST_ERROR_SQLSTATE
SELECT dc_test.fault('s3', '{"mode": "hang"}');
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '500ms';
SELECT s3_get('regress-s3-mp', 'small.txt');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '2 seconds' AS ended_promptly;
SELECT dc_test.fault('s3', NULL);
SELECT s3_get_text('regress-s3-mp', 'small.txt');

DO $$
BEGIN
	PERFORM s3_delete('regress-s3-mp', key) FROM s3_list('regress-s3-mp');
END $$;
SELECT s3_delete_bucket('regress-s3-mp');
\i test/regress/teardown.psql
