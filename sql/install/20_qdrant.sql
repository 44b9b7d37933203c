-- Qdrant: collection and point functions.
-- Reads are STABLE (usable from PostgREST GET); writes are VOLATILE and pass
-- wait=true unless called with wait => false.

CREATE FUNCTION qdrant_create_collection(collection text, dimension integer,
	distance text DEFAULT 'Cosine', if_not_exists boolean DEFAULT false,
	server name DEFAULT 'qdrant') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_qdrant_create_collection' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_create_collection(text, integer, text, boolean, name)
	IS 'create a collection of single unnamed vectors; false when it existed and if_not_exists';

CREATE FUNCTION qdrant_drop_collection(collection text, if_exists boolean DEFAULT false,
	server name DEFAULT 'qdrant') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_qdrant_drop_collection' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_drop_collection(text, boolean, name)
	IS 'drop a collection; false when it did not exist and if_exists';

CREATE FUNCTION qdrant_collections(server name DEFAULT 'qdrant') RETURNS SETOF text
	AS 'MODULE_PATHNAME', 'datacore_qdrant_collections' LANGUAGE C STABLE;
COMMENT ON FUNCTION qdrant_collections(name) IS 'names of the collections, sorted';

CREATE FUNCTION qdrant_collection_info(collection text, server name DEFAULT 'qdrant') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_qdrant_collection_info' LANGUAGE C STABLE;
COMMENT ON FUNCTION qdrant_collection_info(text, name) IS 'Qdrant''s CollectionInfo of a collection';

CREATE FUNCTION qdrant_upsert(collection text, id text, vector real[], payload jsonb DEFAULT NULL,
	wait boolean DEFAULT true, server name DEFAULT 'qdrant') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_qdrant_upsert' LANGUAGE C VOLATILE;
CREATE FUNCTION qdrant_upsert(collection text, id bigint, vector real[], payload jsonb DEFAULT NULL,
	wait boolean DEFAULT true, server name DEFAULT 'qdrant') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_qdrant_upsert' LANGUAGE C VOLATILE;
CREATE FUNCTION qdrant_upsert(collection text, id uuid, vector real[], payload jsonb DEFAULT NULL,
	wait boolean DEFAULT true, server name DEFAULT 'qdrant') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_qdrant_upsert' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_upsert(text, text, real[], jsonb, boolean, name)
	IS 'insert or replace one point; returns its id';

CREATE FUNCTION qdrant_upsert(collection text, points jsonb, wait boolean DEFAULT true,
	server name DEFAULT 'qdrant') RETURNS integer
	AS 'MODULE_PATHNAME', 'datacore_qdrant_upsert_batch' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_upsert(text, jsonb, boolean, name)
	IS 'insert or replace an array of {id, vector, payload} points in one request';

CREATE FUNCTION qdrant_upsert(collection text, ids jsonb[], vectors real[], payloads jsonb[] DEFAULT NULL,
	wait boolean DEFAULT true, server name DEFAULT 'qdrant') RETURNS integer
	AS 'MODULE_PATHNAME', 'datacore_qdrant_upsert_arrays' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_upsert(text, jsonb[], real[], jsonb[], boolean, name)
	IS 'insert or replace points given as arrays (vectors: one row per id) in one request';

CREATE FUNCTION qdrant_search(collection text, vector real[], k integer DEFAULT 10,
	filter jsonb DEFAULT NULL, server name DEFAULT 'qdrant')
	RETURNS TABLE(id text, score real, payload jsonb)
	AS 'MODULE_PATHNAME', 'datacore_qdrant_search' LANGUAGE C STABLE;
COMMENT ON FUNCTION qdrant_search(text, real[], integer, jsonb, name)
	IS 'the k nearest points to a vector, best first, optionally filtered';

CREATE FUNCTION qdrant_delete(collection text, ids text[], wait boolean DEFAULT true,
	server name DEFAULT 'qdrant') RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_qdrant_delete_ids' LANGUAGE C VOLATILE;
CREATE FUNCTION qdrant_delete(collection text, ids bigint[], wait boolean DEFAULT true,
	server name DEFAULT 'qdrant') RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_qdrant_delete_ids' LANGUAGE C VOLATILE;
CREATE FUNCTION qdrant_delete(collection text, ids uuid[], wait boolean DEFAULT true,
	server name DEFAULT 'qdrant') RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_qdrant_delete_ids' LANGUAGE C VOLATILE;
CREATE FUNCTION qdrant_delete(collection text, filter jsonb, wait boolean DEFAULT true,
	server name DEFAULT 'qdrant') RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_qdrant_delete_filter' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION qdrant_delete(text, jsonb, boolean, name)
	IS 'delete the points matching a Qdrant filter';

CREATE FUNCTION qdrant_count(collection text, filter jsonb DEFAULT NULL, exact boolean DEFAULT true,
	server name DEFAULT 'qdrant') RETURNS bigint
	AS 'MODULE_PATHNAME', 'datacore_qdrant_count' LANGUAGE C STABLE;
COMMENT ON FUNCTION qdrant_count(text, jsonb, boolean, name)
	IS 'number of points, optionally matching a Qdrant filter';

CREATE FUNCTION qdrant_get(collection text, ids text[], server name DEFAULT 'qdrant')
	RETURNS TABLE(id text, vector real[], payload jsonb)
	AS 'MODULE_PATHNAME', 'datacore_qdrant_get' LANGUAGE C STABLE;
CREATE FUNCTION qdrant_get(collection text, ids bigint[], server name DEFAULT 'qdrant')
	RETURNS TABLE(id text, vector real[], payload jsonb)
	AS 'MODULE_PATHNAME', 'datacore_qdrant_get' LANGUAGE C STABLE;
CREATE FUNCTION qdrant_get(collection text, ids uuid[], server name DEFAULT 'qdrant')
	RETURNS TABLE(id text, vector real[], payload jsonb)
	AS 'MODULE_PATHNAME', 'datacore_qdrant_get' LANGUAGE C STABLE;
COMMENT ON FUNCTION qdrant_get(text, text[], name)
	IS 'points by id (missing ids are skipped)';


-- "vector @@ query" is the similarity-search condition of a Qdrant foreign
-- table: the scan sends it as the query vector of /points/query.  It has no
-- meaning anywhere else, so evaluating it is an error.
CREATE FUNCTION qdrant_similar(vector real[], query real[]) RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_qdrant_similar' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION qdrant_similar(real[], real[])
	IS 'similarity search condition of Qdrant foreign tables (operator @@)';
CREATE OPERATOR @@ (LEFTARG = real[], RIGHTARG = real[], FUNCTION = qdrant_similar);
COMMENT ON OPERATOR @@ (real[], real[])
	IS 'similarity search condition of Qdrant foreign tables: WHERE vector @@ <query vector>';
