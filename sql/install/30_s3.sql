-- S3 (MinIO and any S3-compatible store): SigV4-signed, path-style requests
CREATE FUNCTION s3_put(bucket text, key text, body bytea, content_type text DEFAULT NULL,
					   server name DEFAULT 'minio') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_s3_put' LANGUAGE C VOLATILE;
CREATE FUNCTION s3_put(bucket text, key text, body text, content_type text DEFAULT NULL,
					   server name DEFAULT 'minio') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_s3_put' LANGUAGE C VOLATILE;
CREATE FUNCTION s3_put(bucket text, key text, body jsonb, content_type text DEFAULT NULL,
					   server name DEFAULT 'minio') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_s3_put' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION s3_put(text, text, bytea, text, name) IS 'store an object; returns its ETag';
COMMENT ON FUNCTION s3_put(text, text, text, text, name) IS 'store a text object; returns its ETag';
COMMENT ON FUNCTION s3_put(text, text, jsonb, text, name) IS 'store a JSON object; returns its ETag';

CREATE FUNCTION s3_get(bucket text, key text, server name DEFAULT 'minio') RETURNS bytea
	AS 'MODULE_PATHNAME', 'datacore_s3_get' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_get(text, text, name) IS 'contents of an object';

CREATE FUNCTION s3_get_text(bucket text, key text, server name DEFAULT 'minio') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_s3_get_text' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_get_text(text, text, name) IS 'contents of an object as text in the database encoding';

CREATE FUNCTION s3_head(bucket text, key text, server name DEFAULT 'minio') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_s3_head' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_head(text, text, name) IS 'metadata of an object, NULL when it does not exist';

CREATE FUNCTION s3_delete(bucket text, key text, server name DEFAULT 'minio') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_s3_delete' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_delete(text, text, name) IS 'delete an object; false when there was none';

CREATE FUNCTION s3_list(bucket text, prefix text DEFAULT '', server name DEFAULT 'minio',
						OUT key text, OUT size bigint, OUT etag text, OUT last_modified timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'datacore_s3_list' LANGUAGE C STRICT VOLATILE ROWS 1000;
COMMENT ON FUNCTION s3_list(text, text, name) IS 'objects of a bucket under a prefix';

CREATE FUNCTION s3_presign(bucket text, key text, method text DEFAULT 'GET',
						   expires interval DEFAULT '1 hour', server name DEFAULT 'minio') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_s3_presign' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_presign(text, text, text, interval, name) IS 'presigned URL for one request on an object';

CREATE FUNCTION s3_create_bucket(bucket text, server name DEFAULT 'minio') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_s3_create_bucket' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_create_bucket(text, name) IS 'create a bucket; false when it exists already and is yours';

CREATE FUNCTION s3_delete_bucket(bucket text, server name DEFAULT 'minio') RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_s3_delete_bucket' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_delete_bucket(text, name) IS 'delete an empty bucket';

-- The signer on explicit inputs, without network; for checking it against
-- published SigV4 test vectors.
CREATE FUNCTION s3_sigv4_sign(method text, path text, query text, headers text[],
							  payload_hash text, access_key_id text, secret_access_key text,
							  region text, service text, amz_date text,
							  presign_expires int DEFAULT NULL, session_token text DEFAULT NULL)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_s3_sigv4_sign' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION s3_sigv4_sign(text, text, text, text[], text, text, text, text, text, text, int, text)
	IS 'SigV4 canonical request, string to sign and signature for the given inputs (test aid)';
CREATE FUNCTION s3_sigv4_signing_key(secret_access_key text, date text, region text, service text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_s3_sigv4_signing_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION s3_sigv4_signing_key(text, text, text, text) IS 'SigV4 signing key in hex (test aid)';
-- Test aids only: keep them off ordinary roles' surface.
REVOKE EXECUTE ON FUNCTION s3_sigv4_sign(text, text, text, text[], text, text, text, text, text, text, int, text),
	s3_sigv4_signing_key(text, text, text, text) FROM PUBLIC;

