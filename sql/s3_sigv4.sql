-- The SigV4 signer checked against the published AWS test vectors
-- (AWS SigV4 test suite, key set S1, and the S3 documentation examples,
-- key set S2), without any network.
\i test/regress/setup.psql
SET search_path = datacore, public;

CREATE TEMP TABLE keyset (name text PRIMARY KEY, akid text, secret text, region text, service text, amz_date text);
INSERT INTO keyset VALUES
	('S1', 'AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'us-east-1', 'service', '20150830T123600Z'),
	('S2', 'AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'us-east-1', 's3', '20130524T000000Z');

CREATE TEMP TABLE vector (
	id text PRIMARY KEY, keyset text, method text, path text, query text, headers text[],
	payload_hash text, expires int, want_hash text, want_signature text);
INSERT INTO vector VALUES
	('V1 get-vanilla', 'S1', 'GET', '/', '',
	 ARRAY['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
	 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', NULL,
	 'bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63',
	 '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'),
	('V2 get-vanilla presigned', 'S1', 'GET', '/', '',
	 ARRAY['Host:example.amazonaws.com'],
	 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 3600,
	 NULL, 'e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d'),
	('V3 get-vanilla-query-order-key-case', 'S1', 'GET', '/', 'Param2=value2&Param1=value1',
	 ARRAY['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
	 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', NULL,
	 NULL, 'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500'),
	('V4 post-vanilla', 'S1', 'POST', '/', '',
	 ARRAY['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
	 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', NULL,
	 NULL, '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'),
	('V5 S3 GetObject', 'S2', 'GET', '/test.txt', '',
	 ARRAY['Host: examplebucket.s3.amazonaws.com', 'Range: bytes=0-9',
		   'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
		   'x-amz-date: 20130524T000000Z'],
	 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', NULL,
	 '7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972',
	 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'),
	('V6 S3 PutObject', 'S2', 'PUT', '/test$file.text', '',
	 ARRAY['Date: Fri, 24 May 2013 00:00:00 GMT', 'Host: examplebucket.s3.amazonaws.com',
		   'x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
		   'x-amz-date: 20130524T000000Z', 'x-amz-storage-class: REDUCED_REDUNDANCY'],
	 '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072', NULL,
	 NULL, '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd'),
	('V7 S3 ListObjects', 'S2', 'GET', '/', 'max-keys=2&prefix=J',
	 ARRAY['Host: examplebucket.s3.amazonaws.com',
		   'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
		   'x-amz-date: 20130524T000000Z'],
	 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', NULL,
	 NULL, '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'),
	('V8 S3 presigned GET', 'S2', 'GET', '/test.txt', '',
	 ARRAY['Host: examplebucket.s3.amazonaws.com'], 'UNSIGNED-PAYLOAD', 86400,
	 '3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04',
	 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404');

CREATE TEMP VIEW signed AS
	SELECT v.*, s3_sigv4_sign(v.method, v.path, v.query, v.headers, v.payload_hash,
							  k.akid, k.secret, k.region, k.service, k.amz_date, v.expires) AS r
	FROM vector v JOIN keyset k ON k.name = v.keyset;

-- every vector: the signature, and the canonical-request hash where published
SELECT id,
	   r->>'signature' = want_signature AS signature_ok,
	   CASE WHEN want_hash IS NULL THEN NULL ELSE r->>'canonical_request_hash' = want_hash END AS hash_ok
FROM signed ORDER BY id;

-- the texts themselves, for the record
SELECT r->>'canonical_request' FROM signed WHERE id = 'V5 S3 GetObject';
SELECT r->>'string_to_sign' FROM signed WHERE id = 'V5 S3 GetObject';
SELECT r->>'canonical_query' FROM signed WHERE id = 'V2 get-vanilla presigned';
SELECT r->>'authorization' FROM signed WHERE id = 'V1 get-vanilla';
SELECT r->>'canonical_request' FROM signed WHERE id = 'V6 S3 PutObject';

-- V9: the signing key alone (AWS general reference example)
SELECT s3_sigv4_signing_key('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20120215', 'us-east-1', 'iam')
	= 'f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d' AS signing_key_ok;

-- header values trimmed and inner blanks collapsed; repeated headers merged
-- in order; names lower-cased and sorted
SELECT r->>'canonical_request' FROM (
	SELECT s3_sigv4_sign('GET', '/', '', ARRAY['My-Header1:   value1  ', 'Host:example.amazonaws.com',
		   'My-Header2:  "a   b   c"  ', 'X-Amz-Date:20150830T123600Z', 'my-header1: second'],
		   'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
		   'AKIDEXAMPLE', 'secret', 'us-east-1', 'service', '20150830T123600Z') AS r) s;

-- S3 keys: encoded once, every byte but A-Z a-z 0-9 - _ . ~ and '/' as
-- upper-case %XX, space as %20 (never '+'), '//' kept
SELECT r->>'canonical_request' FROM (
	SELECT s3_sigv4_sign('PUT', '/bucket/odd key +%~//ü(1)*!', '', ARRAY['Host:h'], 'UNSIGNED-PAYLOAD',
		   'AKIDEXAMPLE', 'secret', 'us-east-1', 's3', '20150830T123600Z') AS r) s;
-- query names and values encoded with '/' too, valueless parameter as name=,
-- sorted by encoded name
SELECT r->>'canonical_query' FROM (
	SELECT s3_sigv4_sign('POST', '/b/k', 'uploads&prefix=a%2Fb c&continuation-token=x%2By%3D%3D&list-type=2',
		   ARRAY['Host:h'], 'UNSIGNED-PAYLOAD', 'AKIDEXAMPLE', 'secret', 'us-east-1', 's3',
		   '20150830T123600Z') AS r) s;
-- a session token is signed into a presigned URL
SELECT r->>'canonical_query' FROM (
	SELECT s3_sigv4_sign('GET', '/b/k', '', ARRAY['Host:h'], 'UNSIGNED-PAYLOAD', 'AKIDEXAMPLE', 'secret',
		   'us-east-1', 's3', '20150830T123600Z', 60, 'tok/en+=') AS r) s;

-- bad inputs
SELECT s3_sigv4_sign('GET', '/', '', ARRAY['no colon'], 'x', 'a', 's', 'r', 's3', '20150830T123600Z');
SELECT s3_sigv4_sign('GET', '/', '', ARRAY['Host:h'], 'x', 'a', 's', 'r', 's3', '2015-08-30');
SELECT s3_sigv4_sign('GET', '/', '', ARRAY['Host:h'], 'x', 'a', NULL, 'r', 's3', '20150830T123600Z');

DROP VIEW signed;
DROP TABLE vector, keyset;
\i test/regress/teardown.psql
