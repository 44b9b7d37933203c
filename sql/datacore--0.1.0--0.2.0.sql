-- datacore 0.1.0 -> 0.2.0
--
-- Each change to sql/install/ since 0.1.0 appears here as well, in the same
-- order; test/t/upgrade.sh checks that an updated 0.1.0 installation matches a
-- fresh 0.2.0 one object by object.

\echo Use "ALTER EXTENSION datacore UPDATE TO '0.2.0'" to load this file. \quit

-- S3: s3_create_bucket returns whether it created the bucket (false: it existed and is yours)
DROP FUNCTION s3_create_bucket(text, name);
CREATE FUNCTION s3_create_bucket(bucket text, server name DEFAULT 'minio') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_s3_create_bucket' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_create_bucket(text, name) IS 'create a bucket; false when it exists already and is yours';
