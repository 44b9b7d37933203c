-- S3 functions against s3rver behind the SigV4-checking front: every
-- function, privileges, credentials, odd keys, multipart, size caps and
-- the S3 error mapping.
\i test/regress/setup.psql
\set SHOW_CONTEXT never
SET search_path = datacore, public;
SET client_min_messages = warning;

-- leftovers of an interrupted earlier run
SELECT dc_test.s3_drop_bucket('regress-s3');
SELECT dc_test.clear_log('s3');

-- buckets: true when created, false when it is there already and yours
-- (MinIO answers 409 BucketAlreadyOwnedByYou, as the front does)
SELECT s3_create_bucket('regress-s3');
SELECT s3_create_bucket('regress-s3');
SELECT s3_create_bucket('');
SELECT s3_create_bucket('Bad_Name!');
\echo :LAST_ERROR_SQLSTATE

-- what went over the wire: signed headers, payload hash, path-style URL
SELECT l->>'method' AS method, l->>'path' AS path, l->'status' AS status,
	   l->'headers'->>'authorization' ~ '^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$' AS signed,
	   l->'headers'->>'x-amz-content-sha256' AS payload_hash
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
SELECT dc_test.clear_log('s3');
-- AWS in us-east-1 and Ceph's radosgw answer a plain 200 for a bucket you
-- own already: still false, the HEAD before the PUT saw it
SELECT dc_test.fault('s3', '{"mode": "status", "status": 200, "body": "", "after": 1, "times": 1}');
SELECT s3_create_bucket('regress-s3');
SELECT l->>'method' AS method, l->>'path' AS path, l->'status' AS status FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
-- a bucket someone else owns is an error
SELECT dc_test.fault('s3', '{"mode": "status", "status": 409, "code": "BucketAlreadyExists", "after": 1, "times": 1}');
SELECT s3_create_bucket('regress-s3');
\echo :LAST_ERROR_SQLSTATE
-- a bucket is one path segment; these never leave the database
SELECT dc_test.clear_log('s3');
SELECT s3_create_bucket('..');
\echo :LAST_ERROR_SQLSTATE
SELECT s3_get('.', 'x');
SELECT s3_put('regress-s3/docs', 'a', 'x'::text);
SELECT s3_presign('..', 'regress-s3/docs/a');
SELECT count(*) AS requests FROM dc_test.log('s3');

-- put: bytea, text and jsonb bodies; the ETag is the MD5 of the body
SELECT s3_put('regress-s3', 'docs/a.bin', '\x00010203ff'::bytea) = md5('\x00010203ff'::bytea) AS etag_ok;
SELECT s3_put('regress-s3', 'docs/b.txt', 'grüße, world') = md5('grüße, world') AS etag_ok;
SELECT s3_put('regress-s3', 'docs/c.json', '{"a": 1, "b": [true, null]}'::jsonb);
SELECT s3_put('regress-s3', 'docs/d.csv', 'x,y'::text, 'text/csv');
SELECT s3_put('regress-s3', 'empty', ''::bytea);
SELECT l->>'method' AS method, l->>'path' AS path, l->'status' AS status,
	   l->'headers'->>'content-type' AS content_type, l->'body'->'bytes' AS bytes,
	   l->'headers'->>'authorization' ~ 'SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,' AS content_type_signed
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
-- the payload hash sent is the body's SHA-256
SELECT (SELECT l->'headers'->>'x-amz-content-sha256' FROM dc_test.log('s3') l
		WHERE l->>'path' = '/regress-s3/docs/b.txt') = encode(sha256(convert_to('grüße, world', 'UTF8')), 'hex') AS payload_hash_ok;

-- get
SELECT s3_get('regress-s3', 'docs/a.bin');
SELECT s3_get_text('regress-s3', 'docs/b.txt');
SELECT s3_get_text('regress-s3', 'docs/c.json')::jsonb;
SELECT length(s3_get('regress-s3', 'empty'));
SELECT s3_get_text('regress-s3', 'docs/a.bin');
\echo :LAST_ERROR_SQLSTATE
SELECT s3_get('regress-s3', 'docs/missing');
\echo :LAST_ERROR_SQLSTATE
SELECT s3_get('regress-nobucket', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT s3_get('regress-s3', '');

-- head
SELECT s3_head('regress-s3', 'docs/b.txt') - 'last_modified' AS head,
	   (s3_head('regress-s3', 'docs/b.txt')->>'last_modified')::timestamptz
		 BETWEEN now() - interval '10 minutes' AND now() + interval '10 minutes' AS recent;
SELECT s3_head('regress-s3', 'docs/c.json')->>'content_type' AS json_type;
SELECT s3_head('regress-s3', 'docs/missing') IS NULL AS missing_is_null;

-- list, with and without prefix
SELECT key, size, etag = md5(s3_get('regress-s3', key)) AS etag_ok,
	   last_modified BETWEEN now() - interval '10 minutes' AND now() + interval '10 minutes' AS recent
FROM s3_list('regress-s3') ORDER BY key;
SELECT key FROM s3_list('regress-s3', 'docs/b') ORDER BY key;
SELECT count(*) FROM s3_list('regress-s3', 'nothing-here/');
SELECT * FROM s3_list('regress-nobucket');
\echo :LAST_ERROR_SQLSTATE

-- listing pages of 1000 follow the continuation token
SELECT count(s3_put('regress-s3', format('many/%s', g), g::text)) FROM generate_series(1, 1001) g;
SELECT dc_test.clear_log('s3');
SELECT count(*), count(DISTINCT key), min(size), max(size) FROM s3_list('regress-s3', 'many/');
SELECT l->>'path' AS path, l->'query'->>'list-type' AS list_type, l->'query'->>'prefix' AS prefix,
	   l->'query' ? 'continuation-token' AS continued, l->'status' AS status
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;

-- delete: true when there was an object, false when not
SELECT s3_delete('regress-s3', 'docs/d.csv'), s3_delete('regress-s3', 'docs/d.csv');
SELECT s3_head('regress-s3', 'docs/d.csv') IS NULL AS gone;
SELECT count(s3_delete('regress-s3', key)) FROM s3_list('regress-s3', 'many/');

-- odd keys are encoded the S3 way and round-trip
CREATE TEMP TABLE odd (key text);
INSERT INTO odd VALUES ('with space'), ('plus+sign'), ('per%cent'), ('tilde~'), ('ünï/çødé'),
	('q?x=1&y#z'), ('(paren)*!''quote'), ('%2F'), ('colon:semi;'), ('a.b/..c/.d');
SELECT key, s3_put('regress-s3', 'odd/' || key, key) = md5(key) AS put_ok FROM odd;
SELECT key, s3_get_text('regress-s3', 'odd/' || key) = key AS get_ok,
	   (s3_head('regress-s3', 'odd/' || key)->>'size')::int = octet_length(key) AS head_ok
FROM odd;
SELECT substr(key, 5) AS key FROM s3_list('regress-s3', 'odd/') ORDER BY key COLLATE "C";
SELECT key, s3_delete('regress-s3', 'odd/' || key) FROM odd;
SELECT count(*) AS left_over FROM s3_list('regress-s3', 'odd/');

-- Keys with empty or dot segments go with their slashes literal, signed as
-- sent: S3 servers (MinIO, Ceph's radosgw, the front) decode the path before
-- they sign it and never normalise it.  The keys stay distinct from the
-- keys they would collapse to.
SELECT dc_test.s3_drop_bucket('regress-s3-keys');
SELECT s3_create_bucket('regress-s3-keys');
CREATE TEMP TABLE six (key text);
INSERT INTO six VALUES ('dir/'), ('a//b'), ('/x'), ('x/'), ('a/./b'), ('a/../b');
SELECT s3_put('regress-s3-keys', 'a/b', 'plain a/b'::text) = md5('plain a/b') AS plain_put;
SELECT dc_test.clear_log('s3');
SELECT key, s3_put('regress-s3-keys', key, 'body of ' || key) = md5('body of ' || key) AS put_ok FROM six;
SELECT l->>'method' AS method, l->>'path' AS decoded_path, l->'status' AS status
FROM dc_test.log('s3') l ORDER BY (l->>'seq')::int;
SELECT key, s3_get_text('regress-s3-keys', key) = 'body of ' || key AS get_ok,
	   (s3_head('regress-s3-keys', key)->>'etag') = md5('body of ' || key) AS head_ok
FROM six;
SELECT key, size, etag FROM s3_list('regress-s3-keys') ORDER BY key COLLATE "C";
SELECT key FROM s3_list('regress-s3-keys', 'a/') ORDER BY key COLLATE "C";
SELECT s3_get_text('regress-s3-keys', 'a/b') AS untouched;
-- a presigned URL signs the literal path too (a client must send it as is:
-- curl --path-as-is; browsers remove dot segments)
SELECT key, (SELECT string_agg(line, '') FROM dc_test.curl('s3', '-s --path-as-is ''' || s3_presign('regress-s3-keys', key) || '''') line) AS presigned_get
FROM six;
SELECT key, s3_delete('regress-s3-keys', key) AS deleted, s3_delete('regress-s3-keys', key) AS again FROM six;
SELECT key FROM s3_list('regress-s3-keys');
SELECT s3_delete('regress-s3-keys', 'a/b');
SELECT s3_delete_bucket('regress-s3-keys');

-- presigned URLs work without credentials, until they expire
SELECT s3_presign('regress-s3', 'docs/b.txt') AS url \gset
SELECT :'url' ~ '^http://127\.0\.0\.1:\d+/regress-s3/docs/b\.txt\?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[^&]+%2F\d{8}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=\d{8}T\d{6}Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{64}$' AS url_shape;
SELECT * FROM dc_test.curl('s3', '-s ''' || :'url' || '''');
SELECT s3_presign('regress-s3', 'odd/new object+1', 'put', '5 minutes') AS url \gset
SELECT * FROM dc_test.curl('s3', '-s -o /dev/null -w ''%{http_code}'' -X PUT --data-binary presigned-body ''' || :'url' || '''');
SELECT s3_get_text('regress-s3', 'odd/new object+1');
SELECT s3_presign('regress-s3', 'odd/new object+1', 'DELETE', '1 minute') AS url \gset
SELECT * FROM dc_test.curl('s3', '-s -o /dev/null -w ''%{http_code}'' -X DELETE ''' || :'url' || '''');
SELECT s3_head('regress-s3', 'odd/new object+1') IS NULL AS deleted;
SELECT s3_presign('regress-s3', 'docs/b.txt', 'GET', '1 second') AS url \gset
SELECT pg_sleep(2.1);
SELECT bool_or(line ~ '<Code>AccessDenied</Code><Message>Request has expired</Message>') AS expired
FROM dc_test.curl('s3', '-s ''' || :'url' || '''') line;
SELECT s3_presign('regress-s3', 'docs/b.txt', 'POST');
SELECT s3_presign('regress-s3', 'docs/b.txt', 'GET', '8 days');
SELECT s3_presign('regress-s3', 'docs/b.txt', 'GET', '0 seconds');
\echo :LAST_ERROR_SQLSTATE

-- a path part of the server URL is signed as the server sees it (decoded,
-- then encoded again); here it names the bucket, with '-' written as %2D
DO $$
BEGIN
	EXECUTE format('CREATE SERVER regress_s3_base FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url %L)',
				   'http://127.0.0.1:' || (SELECT port FROM dc_test.ports WHERE service = 's3') || '/regress%2Ds3');
	EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER regress_s3_base OPTIONS (access_key_id %L, secret_access_key %L)',
				   (SELECT value FROM dc_test.secrets WHERE name = 's3_access_key'),
				   (SELECT value FROM dc_test.secrets WHERE name = 's3_secret_key'));
END $$;
SELECT s3_get_text('docs', 'b.txt', 'regress_s3_base');
SELECT * FROM dc_test.curl('s3', '-s ''' || s3_presign('docs', 'b.txt', server => 'regress_s3_base') || '''');
DROP SERVER regress_s3_base CASCADE;

-- credentials: a wrong secret, an unknown key, no mapping, a session token
SELECT format('CREATE SERVER regress_s3_bad FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url %L)',
			  'http://127.0.0.1:' || port) FROM dc_test.ports WHERE service = 's3' \gexec
SELECT s3_get('regress-s3', 'docs/b.txt', 'regress_s3_bad');
\echo :LAST_ERROR_SQLSTATE
SELECT format('CREATE USER MAPPING FOR CURRENT_USER SERVER regress_s3_bad OPTIONS (access_key_id %L, secret_access_key %L)',
			  (SELECT value FROM dc_test.secrets WHERE name = 's3_access_key'), 'not-the-secret') \gexec
SELECT s3_get('regress-s3', 'docs/b.txt', 'regress_s3_bad');
\echo :LAST_ERROR_SQLSTATE
SELECT s3_put('regress-s3', 'docs/x', 'x'::text, NULL, 'regress_s3_bad');
-- a HEAD has no error document: its bare 403 is the same SQLSTATE as the GET's
SELECT s3_head('regress-s3', 'docs/b.txt', 'regress_s3_bad');
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR CURRENT_USER SERVER regress_s3_bad OPTIONS (SET access_key_id 'AKIDUNKNOWN');
SELECT s3_list('regress-s3', '', 'regress_s3_bad');
\echo :LAST_ERROR_SQLSTATE
-- temporary credentials: the token travels as a signed x-amz-security-token
SELECT format('ALTER USER MAPPING FOR CURRENT_USER SERVER regress_s3_bad OPTIONS (SET access_key_id %L, SET secret_access_key %L, ADD session_token %L)',
			  (SELECT value FROM dc_test.secrets WHERE name = 's3_access_key'),
			  (SELECT value FROM dc_test.secrets WHERE name = 's3_secret_key'), 'regress-token/+=') \gexec
SELECT dc_test.clear_log('s3');
SELECT s3_get_text('regress-s3', 'docs/b.txt', 'regress_s3_bad');
SELECT l->'headers'->>'x-amz-security-token' = 'regress-token/+=' AS token_sent,
	   l->'headers'->>'authorization' ~ 'SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,' AS token_signed
FROM dc_test.log('s3') l;
SELECT s3_presign('regress-s3', 'docs/b.txt', 'GET', '1 minute', 'regress_s3_bad') ~ '&X-Amz-Security-Token=regress-token%2F%2B%3D&' AS presign_token;
-- the secret never shows in an error
ALTER USER MAPPING FOR CURRENT_USER SERVER regress_s3_bad OPTIONS (SET secret_access_key 'regress-secret-xyz');
DO $$
DECLARE
	m text;
	d text;
	h text;
BEGIN
	PERFORM s3_get('regress-s3', 'docs/b.txt', 'regress_s3_bad');
EXCEPTION WHEN invalid_authorization_specification THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RAISE WARNING 'error: %; secret shown: %', m, concat(m, d, h) LIKE '%regress-secret-xyz%';
END $$;
DROP SERVER regress_s3_bad CASCADE;

-- privileges: USAGE on the server is required
CREATE ROLE regress_s3_user;
GRANT USAGE ON SCHEMA datacore TO regress_s3_user;
SET ROLE regress_s3_user;
SELECT s3_get_text('regress-s3', 'docs/b.txt');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER minio TO regress_s3_user;
SET ROLE regress_s3_user;
SELECT s3_get_text('regress-s3', 'docs/b.txt');
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER minio FROM regress_s3_user;
REVOKE USAGE ON SCHEMA datacore FROM regress_s3_user;
DROP ROLE regress_s3_user;

-- a GET is capped by max_response_bytes, before the body is read
ALTER SERVER minio OPTIONS (ADD max_response_bytes '10');
SELECT s3_get('regress-s3', 'docs/b.txt');
\echo :LAST_ERROR_SQLSTATE
SELECT s3_get_text('regress-s3', 'docs/c.json');
-- also when the server sends no Content-Length (chunked)
SELECT dc_test.fault('s3', '{"mode": "oversize", "bytes": 1000000}');
SELECT s3_get('regress-s3', 'docs/b.txt');
SELECT dc_test.fault('s3', NULL);
ALTER SERVER minio OPTIONS (DROP max_response_bytes);
SELECT s3_get_text('regress-s3', 'docs/b.txt');

DO $$
BEGIN
	PERFORM s3_delete('regress-s3', key) FROM s3_list('regress-s3');
END $$;
SELECT s3_delete_bucket('regress-s3');
SELECT s3_delete_bucket('regress-s3');
\echo :LAST_ERROR_SQLSTATE
\i test/regress/teardown.psql
