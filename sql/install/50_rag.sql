
-- RAG pipelines: a table's rows embedded by Ollama and kept in a Qdrant
-- collection (rag_sync), searched (rag_search) and used to answer questions
-- (rag_answer); rag_schedule hands rag_sync to pg_cron when it is there.
--
-- Everything runs with the caller's rights: reading the source needs SELECT
-- on it, reaching Ollama and Qdrant needs USAGE on their servers (checked by
-- the service functions).  A pipeline belongs to exactly one role, the one
-- that created it: only that role changes, syncs, schedules, resets or drops
-- it, so a sync always runs with the owner's rights, whoever triggers it.
-- Members of the owner may read the row and search; a superuser acts on
-- someone else's pipeline only by SET ROLE to its owner (or by writing the
-- catalog directly).

CREATE TABLE rag_pipelines (
	name text PRIMARY KEY
		CHECK (name <> '' AND octet_length(name) <= 48),
	owner regrole NOT NULL DEFAULT pg_catalog.quote_ident(current_user)::regrole,
	source regclass,
	id_column name NOT NULL,
	text_column name NOT NULL,
	updated_column name,
	payload_columns name[] NOT NULL DEFAULT '{}',
	collection text NOT NULL CHECK (collection <> ''),
	model text,
	batch_size integer NOT NULL DEFAULT 64 CHECK (batch_size BETWEEN 1 AND 10000),
	ollama_server name NOT NULL DEFAULT 'ollama',
	qdrant_server name NOT NULL DEFAULT 'qdrant',
	dimension integer,
	last_updated text,
	last_id text,
	last_run timestamptz,
	rows_synced bigint NOT NULL DEFAULT 0,
	created timestamptz NOT NULL DEFAULT now(),
	chunker text NOT NULL DEFAULT 'none',
	chunk_size integer,
	chunk_overlap integer NOT NULL DEFAULT 0,
	template text,
	capture text NOT NULL DEFAULT 'watermark',
	max_batch_chars integer,
	last_sync_start timestamptz,
	last_sync_rows bigint,
	last_sync_seconds double precision,
	s3_bucket text,
	s3_prefix text,
	s3_server name,
	parent text,
	retired_collection text,
	CONSTRAINT rag_pipelines_chunker_check
		CHECK (chunker IN ('none', 'character', 'recursive')),
	CONSTRAINT rag_pipelines_chunk_size_check
		CHECK (CASE WHEN chunker = 'none' THEN chunk_size IS NULL AND chunk_overlap = 0
				ELSE chunk_size BETWEEN 1 AND 1000000 AND chunk_overlap >= 0 AND chunk_overlap < chunk_size END),
	CONSTRAINT rag_pipelines_capture_check
		CHECK (capture = 'trigger' OR capture = 'watermark' AND updated_column IS NOT NULL
			   OR capture = 'etag' AND s3_bucket IS NOT NULL),
	CONSTRAINT rag_pipelines_source_check
		CHECK ((source IS NULL) = (s3_bucket IS NOT NULL) AND (s3_bucket IS NULL OR chunker <> 'none')),
	CONSTRAINT rag_pipelines_max_batch_chars_check CHECK (max_batch_chars >= 1)
);
COMMENT ON TABLE rag_pipelines IS 'RAG pipelines: source table, columns, target collection and sync watermark';
COMMENT ON COLUMN rag_pipelines.owner IS 'the role that created the pipeline; only it changes, syncs or schedules it';
COMMENT ON COLUMN rag_pipelines.model IS 'embedding model; NULL = the Ollama server''s embedding_model';
COMMENT ON COLUMN rag_pipelines.dimension IS 'vector size of the collection, set when rag_sync created it';
COMMENT ON COLUMN rag_pipelines.last_updated IS 'watermark: updated_column of the last synced row (ISO 8601 for dates and times)';
COMMENT ON COLUMN rag_pipelines.last_id IS 'watermark: id_column of the last synced row';
COMMENT ON COLUMN rag_pipelines.last_run IS 'end of the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.rows_synced IS 'rows sent to Qdrant (upserted or deleted) since creation or reset';
COMMENT ON COLUMN rag_pipelines.chunker IS 'none (a row is one point), character or recursive';
COMMENT ON COLUMN rag_pipelines.chunk_size IS 'maximum characters per chunk (not for chunker none)';
COMMENT ON COLUMN rag_pipelines.chunk_overlap IS 'characters a chunk repeats from the end of the one before';
COMMENT ON COLUMN rag_pipelines.template IS 'text embedded for each chunk, $chunk and $column replaced; NULL = the chunk';
COMMENT ON COLUMN rag_pipelines.capture IS 'watermark (updated_column order) or trigger (rag_queue filled by triggers on the source)';
COMMENT ON COLUMN rag_pipelines.max_batch_chars IS 'an embed request closes before its texts exceed this many characters; NULL = no limit';
COMMENT ON COLUMN rag_pipelines.last_sync_start IS 'start of the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.last_sync_rows IS 'rows sent by the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.last_sync_seconds IS 'duration of the last successful rag_sync call';
COMMENT ON COLUMN rag_pipelines.s3_bucket IS 'for a pipeline of S3 documents (rag_create_s3): the bucket; source is then NULL';
COMMENT ON COLUMN rag_pipelines.s3_prefix IS 'for a pipeline of S3 documents: the key prefix';
COMMENT ON COLUMN rag_pipelines.s3_server IS 'for a pipeline of S3 documents: the datacore_s3 server';
COMMENT ON COLUMN rag_pipelines.parent IS 'set on the rebuild of a pipeline under a new model (rag_change_model): the pipeline it replaces';
COMMENT ON COLUMN rag_pipelines.retired_collection IS 'collection replaced by a model change, dropped by the next rag_sync';

-- pg_dump keeps the pipelines a user created (extension tables are skipped
-- otherwise).
SELECT pg_catalog.pg_extension_config_dump('rag_pipelines', '');

-- Anyone may keep pipelines.  A role sees the rows of the roles it belongs
-- to (so that members can search a pipeline of their group), but inserts,
-- changes and deletes only rows whose owner it is itself: membership is not
-- ownership, since a sync runs with the rights of whoever calls it.
-- REVOKE INSERT ... FROM PUBLIC to restrict who may create.
ALTER TABLE rag_pipelines ENABLE ROW LEVEL SECURITY;
CREATE POLICY rag_pipelines_read ON rag_pipelines FOR SELECT
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY rag_pipelines_insert ON rag_pipelines FOR INSERT
	WITH CHECK (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE POLICY rag_pipelines_update ON rag_pipelines FOR UPDATE
	USING (owner = pg_catalog.quote_ident(current_user)::regrole)
	WITH CHECK (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE POLICY rag_pipelines_delete ON rag_pipelines FOR DELETE
	USING (owner = pg_catalog.quote_ident(current_user)::regrole);
GRANT SELECT, INSERT, UPDATE, DELETE ON rag_pipelines TO PUBLIC;

-- The same rule for roles that bypass row-level security (BYPASSRLS, and the
-- table's owner if it is not a superuser): only superusers write rows of
-- other roles, or give a row to another role.  A trigger function cannot be
-- called directly; EXECUTE is revoked all the same.
CREATE FUNCTION rag_pipelines_guard() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me regrole := quote_ident(current_user)::regrole;
BEGIN
	IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = me) THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	IF TG_OP <> 'INSERT' AND OLD.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', OLD.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The pipeline belongs to role %s; only that role may change it.', OLD.owner);
	END IF;
	IF TG_OP <> 'DELETE' AND NEW.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'rag pipeline "%" must belong to the role that writes it', NEW.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The owner would be %s, the current role is %s.', NEW.owner, me),
				  HINT = 'Only a superuser gives a pipeline to another role.';
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
REVOKE EXECUTE ON FUNCTION rag_pipelines_guard() FROM PUBLIC;
COMMENT ON FUNCTION rag_pipelines_guard() IS 'refuse writes to RAG pipelines of other roles, also for BYPASSRLS roles (internal)';
CREATE TRIGGER rag_pipelines_guard BEFORE INSERT OR UPDATE OR DELETE ON rag_pipelines
	FOR EACH ROW EXECUTE FUNCTION rag_pipelines_guard();

-- The pipeline row; a missing (or invisible) one is an error naming it.
-- for_update is for every call that changes or runs the pipeline: the row is
-- then locked, and it must belong to the current role itself; neither
-- membership in the owner nor being a superuser is enough, because the work
-- that follows runs with the caller's rights.  (Everything this reads is
-- visible to the caller anyway, so any role may execute it.)
CREATE FUNCTION rag_get(pipeline text, for_update boolean DEFAULT false)
	RETURNS rag_pipelines
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	me regrole := quote_ident(current_user)::regrole;
BEGIN
	IF pipeline IS NULL THEN
		RAISE EXCEPTION 'rag pipeline name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- the lock below would refuse too, but without saying where to go
	IF for_update AND pg_is_in_recovery() THEN
		RAISE EXCEPTION 'cannot change or run rag pipeline "%" in a read-only transaction', pipeline
			USING ERRCODE = 'read_only_sql_transaction',
				  DETAIL = 'This server is a hot standby.',
				  HINT = 'Run it on the primary server.';
	END IF;
	SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline;
	-- read again under the lock: only a superuser changes an owner, but it
	-- may have done so meanwhile.  NO KEY UPDATE: the lock must not wait for
	-- writers whose capture triggers are queueing rows (their foreign key
	-- checks hold KEY SHARE on the row until they commit).
	IF FOUND AND for_update AND p.owner = me THEN
		SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline FOR NO KEY UPDATE;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rag pipeline "%" does not exist', pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'List the pipelines with: SELECT name FROM datacore.rag_pipelines;';
	END IF;
	IF for_update AND p.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The pipeline belongs to role %s: only that role changes, syncs or schedules it, with its own rights.',
								  p.owner),
				  HINT = CASE WHEN NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = p.owner)
							  THEN 'Its owner was dropped: a superuser can set a new owner in datacore.rag_pipelines, or delete the row.'
							  WHEN pg_has_role(p.owner, 'MEMBER')
							  THEN format('To act as its owner: SET ROLE %s;', p.owner)
							  ELSE 'Only its owner, or a superuser acting as it with SET ROLE, can.' END;
	END IF;
	RETURN p;
END $$;
COMMENT ON FUNCTION rag_get(text, boolean) IS 'the catalog row of a RAG pipeline, locked and owned by the current role when for_update (internal)';

-- The base type of a column of the source, after checking that it exists
-- and that the caller may read it.  "role" says what the column is for, in
-- messages.
CREATE FUNCTION rag_column_type(source regclass, col name, role text)
	RETURNS regtype
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t oid;
	dom oid;
BEGIN
	IF col IS NULL THEN
		RAISE EXCEPTION '% column must not be null', role
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT a.atttypid INTO t FROM pg_attribute a
	 WHERE a.attrelid = source AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation % does not exist', col, source
			USING ERRCODE = 'undefined_column',
				  DETAIL = format('It was given as the %s column of a RAG pipeline.', role);
	END IF;
	IF NOT has_column_privilege(source, col, 'SELECT') THEN
		RAISE EXCEPTION 'permission denied for column "%" of relation %', col, source
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'A RAG pipeline reads its source with the rights of the role that runs it.';
	END IF;
	-- a domain counts as its base type
	LOOP
		SELECT typbasetype INTO dom FROM pg_type WHERE oid = t AND typtype = 'd';
		EXIT WHEN NOT FOUND;
		t := dom;
	END LOOP;
	RETURN t::regtype;
END $$;
COMMENT ON FUNCTION rag_column_type(regclass, name, text) IS 'checked base type of a RAG source column (internal)';

-- Check everything a pipeline row names: the source and its columns (with
-- the caller's SELECT rights) and the two servers (wrapper and USAGE).
-- Raises on the first problem.
CREATE FUNCTION rag_check(p rag_pipelines) RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	kind "char";
	t regtype;
	col name;
	srv record;
BEGIN
	IF p.s3_bucket IS NOT NULL THEN
		PERFORM datacore.rag_check_s3(p);
	ELSE
	SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = p.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'source relation of rag pipeline "%" does not exist', p.name
			USING ERRCODE = 'undefined_table',
				  DETAIL = 'The table or view the pipeline was created on has been dropped.',
				  HINT = format('Drop the pipeline with: SELECT datacore.rag_drop(%L);', p.name);
	END IF;
	IF kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
		RAISE EXCEPTION '% is not a table, view, materialized view or foreign table', p.source
			USING ERRCODE = 'wrong_object_type';
	END IF;

	t := datacore.rag_column_type(p.source, p.id_column, 'id');
	IF t NOT IN ('smallint'::regtype, 'integer', 'bigint', 'uuid') THEN
		RAISE EXCEPTION 'id column "%" has type %, not an integer or uuid', p.id_column, t
			USING ERRCODE = 'datatype_mismatch',
				  DETAIL = 'Qdrant point ids are unsigned integers or UUIDs; the pipeline uses the row id as the point id.',
				  HINT = 'Use a view whose id column is an integer or uuid, e.g. a uuid derived from the key.';
	END IF;
	t := datacore.rag_column_type(p.source, p.text_column, 'text');
	IF t NOT IN ('text'::regtype, 'character varying', 'character', 'name') THEN
		RAISE EXCEPTION 'text column "%" has type %, not a string type', p.text_column, t
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'To embed other values or several columns, create a view with one text column and use it as the source.';
	END IF;
	IF p.capture IS DISTINCT FROM 'watermark' AND p.capture IS DISTINCT FROM 'trigger' THEN
		RAISE EXCEPTION 'capture must be ''watermark'' or ''trigger'', not %', coalesce(quote_literal(p.capture), 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p.updated_column IS NULL AND p.capture = 'watermark' THEN
		RAISE EXCEPTION 'updated column must not be null'
			USING ERRCODE = 'null_value_not_allowed',
				  DETAIL = 'A watermark pipeline finds changed rows by their updated column.',
				  HINT = 'Pass capture => ''trigger'' to capture changes with triggers instead.';
	END IF;
	IF p.updated_column IS NOT NULL THEN
		t := datacore.rag_column_type(p.source, p.updated_column, 'updated');
		IF t NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone', 'date',
					 'smallint', 'integer', 'bigint', 'numeric') THEN
			RAISE EXCEPTION 'updated column "%" has type %, not a timestamp, date or integer', p.updated_column, t
				USING ERRCODE = 'datatype_mismatch',
					  DETAIL = 'The updated column orders rows for incremental sync; it must grow whenever a row changes.';
		END IF;
	END IF;
	IF p.capture = 'trigger' AND kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', p.source
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = 'Trigger capture needs triggers on the source, which only tables have.',
				  HINT = 'Use capture => ''watermark'' for views and foreign tables.';
	END IF;
	END IF;

	-- raises on a bad chunker, size or overlap (nothing is chunked)
	PERFORM datacore.rag_chunks(NULL, p.chunker, p.chunk_size, p.chunk_overlap);
	IF p.chunker = 'none' AND (p.chunk_size IS NOT NULL OR p.chunk_overlap <> 0) THEN
		RAISE EXCEPTION 'chunk_size and chunk_overlap need a chunker'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass chunker => ''recursive'' or ''character''.';
	END IF;
	IF p.max_batch_chars < 1 THEN
		RAISE EXCEPTION 'max_batch_chars must be at least 1'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL for no limit.';
	END IF;
	IF p.template IS NOT NULL THEN
		IF NOT 'chunk' = ANY (datacore.rag_template_columns(p.template)) THEN
			RAISE EXCEPTION 'template must contain $chunk'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'The template is what gets embedded for each chunk, for example ''$title: $chunk''.';
		END IF;
		FOREACH col IN ARRAY datacore.rag_template_columns(p.template) LOOP
			CONTINUE WHEN col = 'chunk' OR p.s3_bucket IS NOT NULL AND col IN ('bucket', 'key');
			IF p.s3_bucket IS NOT NULL THEN
				RAISE EXCEPTION 'template of an S3 pipeline names "%"', col
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = 'A template of S3 documents can use $chunk, $bucket and $key.';
			END IF;
			PERFORM datacore.rag_column_type(p.source, col, 'template');
		END LOOP;
	END IF;

	IF array_position(p.payload_columns, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'payload_columns must not contain nulls'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOREACH col IN ARRAY p.payload_columns LOOP
		PERFORM datacore.rag_column_type(p.source, col, 'payload');
		IF col IN ('id', 'text') THEN
			RAISE EXCEPTION 'payload column "%" collides with a key the pipeline sets', col
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Every point''s payload holds the row id under "id" and the embedded text under "text".',
					  HINT = 'Use a view that renames the column.';
		END IF;
	END LOOP;
	IF cardinality(p.payload_columns) <> (SELECT count(DISTINCT c) FROM unnest(p.payload_columns) c) THEN
		RAISE EXCEPTION 'payload_columns lists a column twice'
			USING ERRCODE = 'duplicate_column';
	END IF;

	FOR srv IN SELECT * FROM (VALUES (p.ollama_server, 'datacore_ollama', 'url ''http://127.0.0.1:11434'''),
									 (p.qdrant_server, 'datacore_qdrant', 'url ''http://127.0.0.1:6333''')) v(server, wrapper, example)
				   UNION ALL
				   SELECT p.s3_server, 'datacore_s3', 'url ''http://127.0.0.1:9000'', region ''us-east-1''' WHERE p.s3_bucket IS NOT NULL
	LOOP
		IF srv.server IS NULL THEN
			RAISE EXCEPTION 'server name must not be null'
				USING ERRCODE = 'null_value_not_allowed';
		END IF;
		IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = srv.server) THEN
			RAISE EXCEPTION 'server "%" does not exist', srv.server
				USING ERRCODE = 'undefined_object',
					  DETAIL = format('A RAG pipeline needs a server of wrapper %s.', srv.wrapper),
					  HINT = format('Create it with: CREATE SERVER %I FOREIGN DATA WRAPPER %s OPTIONS (%s);',
									srv.server, srv.wrapper, srv.example);
		END IF;
		IF NOT EXISTS (SELECT FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
						WHERE s.srvname = srv.server AND w.fdwname = srv.wrapper) THEN
			RAISE EXCEPTION 'server "%" does not belong to wrapper %', srv.server, srv.wrapper
				USING ERRCODE = 'wrong_object_type';
		END IF;
		IF NOT has_server_privilege(srv.server, 'USAGE') THEN
			RAISE EXCEPTION 'permission denied for foreign server %', srv.server
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END LOOP;
END $$;
COMMENT ON FUNCTION rag_check(rag_pipelines) IS 'validate a RAG pipeline''s source, columns and servers (internal)';

-- The checks of rag_create's and rag_create_s3's own arguments that come
-- before the pipeline row is checked (rag_check): a valid name, collection,
-- batch size and model.
CREATE FUNCTION rag_create_check(name text, collection text, batch_size integer, model text)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF rag_create_check.name IS NULL OR rag_create_check.name = '' OR octet_length(rag_create_check.name) > 48 THEN
		RAISE EXCEPTION 'invalid rag pipeline name: %', coalesce(quote_literal(rag_create_check.name), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A pipeline name is a non-empty string of at most 48 bytes.';
	END IF;
	IF rag_create_check.collection IS NULL OR rag_create_check.collection = '' THEN
		RAISE EXCEPTION 'collection must be a non-empty string' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF rag_create_check.batch_size IS NULL OR rag_create_check.batch_size NOT BETWEEN 1 AND 10000 THEN
		RAISE EXCEPTION 'batch_size must be between 1 and 10000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF rag_create_check.model = '' THEN
		RAISE EXCEPTION 'model must not be an empty string'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL to use the embedding_model option of the Ollama server.';
	END IF;
END $$;
COMMENT ON FUNCTION rag_create_check(text, text, integer, text) IS 'validate the name, collection, batch size and model of a new RAG pipeline (internal)';

CREATE FUNCTION rag_create(name text, source regclass, id_column name, text_column name,
		updated_column name, collection text, payload_columns name[] DEFAULT '{}',
		model text DEFAULT NULL, batch_size integer DEFAULT 64,
		ollama_server name DEFAULT 'ollama', qdrant_server name DEFAULT 'qdrant',
		chunker text DEFAULT 'none', chunk_size integer DEFAULT NULL,
		chunk_overlap integer DEFAULT 0, template text DEFAULT NULL,
		capture text DEFAULT 'watermark', max_batch_chars integer DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
BEGIN
	PERFORM datacore.rag_create_check(rag_create.name, rag_create.collection, rag_create.batch_size,
									  rag_create.model);
	IF rag_create.source IS NULL THEN
		RAISE EXCEPTION 'source must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;

	p.name := rag_create.name;
	p.source := rag_create.source;
	p.id_column := rag_create.id_column;
	p.text_column := rag_create.text_column;
	p.updated_column := rag_create.updated_column;
	p.payload_columns := coalesce(rag_create.payload_columns, '{}');
	p.collection := rag_create.collection;
	p.model := rag_create.model;
	p.batch_size := rag_create.batch_size;
	p.ollama_server := rag_create.ollama_server;
	p.qdrant_server := rag_create.qdrant_server;
	p.chunker := rag_create.chunker;
	p.chunk_size := rag_create.chunk_size;
	p.chunk_overlap := coalesce(rag_create.chunk_overlap, 0);
	p.template := rag_create.template;
	p.capture := rag_create.capture;
	p.max_batch_chars := rag_create.max_batch_chars;
	PERFORM datacore.rag_check(p);

	BEGIN
		INSERT INTO datacore.rag_pipelines (name, source, id_column, text_column, updated_column,
				payload_columns, collection, model, batch_size, ollama_server, qdrant_server,
				chunker, chunk_size, chunk_overlap, template, capture, max_batch_chars)
			VALUES (p.name, p.source, p.id_column, p.text_column, p.updated_column,
					p.payload_columns, p.collection, p.model, p.batch_size,
					p.ollama_server, p.qdrant_server,
					p.chunker, p.chunk_size, p.chunk_overlap, p.template, p.capture, p.max_batch_chars);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'rag pipeline "%" already exists', p.name
			USING ERRCODE = 'duplicate_object';
	END;
	IF p.capture = 'trigger' THEN
		PERFORM datacore.rag_capture_triggers(p, true);
	END IF;
END $$;
COMMENT ON FUNCTION rag_create(text, regclass, name, name, name, text, name[], text, integer, name, name,
							   text, integer, integer, text, text, integer)
	IS 'register a RAG pipeline: rows of source embedded into a Qdrant collection by rag_sync';

-- Job name under which rag_schedule registers a pipeline with pg_cron; it
-- carries the database so that pipelines of the same name in different
-- databases do not replace each other's job.
CREATE FUNCTION rag_job_name(pipeline text) RETURNS text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	job text := format('rag_sync:%s:%s', current_database(), pipeline);
BEGIN
	IF octet_length(job) > 63 THEN
		RAISE EXCEPTION 'pg_cron job name "%" is too long', job
			USING ERRCODE = 'name_too_long',
				  DETAIL = 'pg_cron job names hold at most 63 bytes.',
				  HINT = 'Schedule the pipeline under a shorter name, or call cron.schedule yourself.';
	END IF;
	RETURN job;
END $$;
COMMENT ON FUNCTION rag_job_name(text) IS 'pg_cron job name of a RAG pipeline in this database (internal)';

-- cron.database_name, which only superusers may read directly; the name of
-- the database pg_cron works in is no secret, and rag_schedule must tell
-- any caller where to go.  NULL when pg_cron is not loaded.
CREATE FUNCTION rag_cron_database() RETURNS text
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$ SELECT current_setting('cron.database_name', true) $$;
COMMENT ON FUNCTION rag_cron_database() IS 'the database pg_cron runs jobs from, NULL without pg_cron (internal)';

-- Whether pg_cron's functions can be called here: it is installed in this
-- database and this is the database its scheduler reads.  Otherwise raises,
-- with remote_sql (if given) in the hint as what to run in the cron
-- database instead.
CREATE FUNCTION rag_cron_check(remote_sql text) RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	crondb text := datacore.rag_cron_database();
BEGIN
	IF crondb IS NULL THEN
		RAISE EXCEPTION 'pg_cron is not loaded on this server'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'rag_schedule registers jobs with pg_cron, which must be in shared_preload_libraries.',
				  HINT = 'Or run SELECT datacore.rag_sync(...) from any other scheduler.';
	END IF;
	IF crondb <> current_database() THEN
		RAISE EXCEPTION 'pg_cron jobs can only be managed from database "%"', crondb
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('pg_cron keeps its jobs in the database named by cron.database_name; this is database "%s".',
								  current_database()),
				  HINT = format('Run this in database "%s": %s', crondb, remote_sql);
	END IF;
	IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'extension pg_cron is not installed in database "%"', crondb
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'A superuser can install it with: CREATE EXTENSION pg_cron;';
	END IF;
END $$;
COMMENT ON FUNCTION rag_cron_check(text) IS 'raise unless pg_cron can be called from this database (internal)';

CREATE FUNCTION rag_schedule(name text, schedule text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_schedule.name, true);
	job text := datacore.rag_job_name(p.name);
	command text := format('SELECT datacore.rag_sync(%L)', p.name);
	jobid bigint;
BEGIN
	IF rag_schedule.schedule IS NULL OR rag_schedule.schedule = '' THEN
		RAISE EXCEPTION 'schedule must be a non-empty cron expression'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example ''*/5 * * * *'' (every five minutes).';
	END IF;
	PERFORM datacore.rag_cron_check(
		format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
			   job, rag_schedule.schedule, command, current_database(), current_user));
	-- called through EXECUTE: datacore does not depend on pg_cron.  The job
	-- runs as current_user, who is the owner (rag_get checked it).
	EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid USING job, rag_schedule.schedule, command;
	RETURN jobid;
END $$;
COMMENT ON FUNCTION rag_schedule(text, text)
	IS 'run rag_sync of a pipeline on a pg_cron schedule (in the cron database); returns the job id';

CREATE FUNCTION rag_unschedule(name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	job text := datacore.rag_job_name(rag_unschedule.name);
	jobid bigint;
BEGIN
	PERFORM datacore.rag_cron_check(
		format('SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %L;', job));
	EXECUTE 'SELECT j.jobid FROM cron.job j WHERE j.jobname = $1 AND j.username = current_user'
		INTO jobid USING job;
	IF jobid IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT cron.unschedule($1)' USING jobid;
	RETURN true;
END $$;
COMMENT ON FUNCTION rag_unschedule(text)
	IS 'remove the pg_cron job of a pipeline; false when there was none';

CREATE FUNCTION rag_drop(name text, drop_collection boolean DEFAULT false) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_drop.name, true);
	s record;
BEGIN
	-- a rebuild under way goes too, with its unfinished collection
	FOR s IN SELECT r.name, r.collection FROM datacore.rag_pipelines r WHERE r.parent = p.name LOOP
		PERFORM datacore.qdrant_drop_collection(s.collection, true, p.qdrant_server);
		DELETE FROM datacore.rag_pipelines r WHERE r.name = s.name;
	END LOOP;
	IF drop_collection THEN
		PERFORM datacore.qdrant_drop_collection(p.collection, true, p.qdrant_server);
	END IF;
	-- the job would fail from now on; remove it when pg_cron is reachable here
	IF datacore.rag_cron_database() = current_database()
	   AND EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron')
	   AND octet_length(format('rag_sync:%s:%s', current_database(), p.name)) <= 63 THEN
		PERFORM datacore.rag_unschedule(p.name);
	END IF;
	IF p.capture = 'trigger' THEN
		PERFORM datacore.rag_capture_triggers(p, false);
	END IF;
	-- its rows, queue and errors go with it (foreign keys)
	DELETE FROM datacore.rag_pipelines r WHERE r.name = p.name;
END $$;
COMMENT ON FUNCTION rag_drop(text, boolean)
	IS 'forget a RAG pipeline (and its pg_cron job here); drop_collection also drops the Qdrant collection';

CREATE FUNCTION rag_reset(name text, drop_collection boolean DEFAULT false) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_reset.name, true);
BEGIN
	IF drop_collection THEN
		PERFORM datacore.qdrant_drop_collection(p.collection, true, p.qdrant_server);
	END IF;
	UPDATE datacore.rag_pipelines r
	   SET last_updated = NULL, last_id = NULL, rows_synced = 0,
		   dimension = CASE WHEN drop_collection THEN NULL ELSE r.dimension END
	 WHERE r.name = p.name;
	DELETE FROM datacore.rag_errors e WHERE e.pipeline = p.name;
	DELETE FROM datacore.rag_queue q WHERE q.pipeline = p.name;
	-- S3 documents: every object is fetched again
	UPDATE datacore.rag_rows r SET etag = NULL WHERE r.pipeline = p.name AND r.etag IS NOT NULL;
	-- without a watermark, everything is sent again by queueing it
	IF p.capture = 'trigger' THEN
		PERFORM datacore.rag_enqueue_existing(p.name);
	END IF;
	-- the rows' chunk counts are kept unless the collection is gone: the next
	-- sync still knows which surplus points to delete
	IF drop_collection THEN
		DELETE FROM datacore.rag_rows r WHERE r.pipeline = p.name;
	END IF;
END $$;
COMMENT ON FUNCTION rag_reset(text, boolean)
	IS 'clear a pipeline''s watermark (trigger capture: queue every row) so the next rag_sync sends every row again';

/*
 * rag_sync: send the rows changed since the last sync to Qdrant,
 * batch_size rows per batch.  First the queue (ids queued by the capture
 * triggers, rag_enqueue_existing and rag_retry_errors), oldest first; then,
 * for a watermark pipeline, the rows after the watermark in (updated, id)
 * order.  rag_send embeds and upserts each batch; only when Qdrant has it do
 * the batch's queue entries go and the watermark move.  Returns the number
 * of rows sent.
 *
 * A call is one transaction.  An error rolls back every queue and watermark
 * change of the call, while the batches already upserted stay in Qdrant; the
 * next call sends them again, which is harmless because an upsert with the
 * same id replaces the point.  max_batches bounds the work of one call.
 */
CREATE FUNCTION rag_sync(name text, max_batches integer DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	id_type regtype;
	upd_type regtype;
	payload_expr text;
	vars_expr text;
	cols text;
	batch_sql text;
	queue_sql text;
	b_n integer;
	b_ids jsonb[];
	b_texts text[];
	b_payloads jsonb[];
	b_vars jsonb[];
	b_last_upd text;
	b_last_id text;
	q_ids text[];
	q_xmins text[];
	gone text[];
	batches integer := 0;
	total bigint := 0;
	started timestamptz := clock_timestamp();
BEGIN
	IF max_batches < 1 THEN
		RAISE EXCEPTION 'max_batches must be at least 1'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL to sync every changed row.';
	END IF;
	-- the row lock serialises concurrent syncs of one pipeline; a waiting
	-- call then starts from the watermark the first one left
	p := datacore.rag_get(rag_sync.name, true);
	PERFORM datacore.rag_check(p);
	-- the collection a model change replaced: the switch has committed
	IF p.retired_collection IS NOT NULL THEN
		PERFORM datacore.qdrant_drop_collection(p.retired_collection, true, p.qdrant_server);
		UPDATE datacore.rag_pipelines r SET retired_collection = NULL WHERE r.name = p.name;
	END IF;
	IF p.s3_bucket IS NOT NULL THEN
		total := datacore.rag_sync_s3(p, max_batches);
		RETURN total + datacore.rag_rebuild(p, max_batches);
	END IF;
	id_type := datacore.rag_column_type(p.source, p.id_column, 'id');

	IF cardinality(p.payload_columns) = 0 THEN
		payload_expr := '''{}''::jsonb';
	ELSE
		payload_expr := format('(SELECT to_jsonb(c) FROM (SELECT %s) c)',
							   (SELECT string_agg(format('t.%I', col), ', ' ORDER BY ord)
								  FROM unnest(p.payload_columns) WITH ORDINALITY u(col, ord)));
	END IF;
	-- the columns a template names, by name
	SELECT 'jsonb_build_object(' || string_agg(format('%L, t.%I', c, c), ', ') || ')' INTO vars_expr
	  FROM unnest(datacore.rag_template_columns(p.template)) c WHERE c <> 'chunk';
	cols := format('to_jsonb(t.%I) AS id, t.%I::text AS txt, %s AS payload, %s AS vars',
				   p.id_column, p.text_column, payload_expr, coalesce(vars_expr, 'NULL::jsonb'));

	-- $1: the queued ids (text), in queue order; an id the source no longer
	-- has is a deleted row
	queue_sql := format($q$
		SELECT array_agg(b.id ORDER BY b.ord), array_agg(b.txt ORDER BY b.ord),
			   array_agg(b.payload ORDER BY b.ord), array_agg(b.vars ORDER BY b.ord)
		  FROM (SELECT DISTINCT ON (u.ord) %1$s, u.ord
				  FROM unnest($1::%2$s[]) WITH ORDINALITY u(id, ord)
				  JOIN %3$s t ON t.%4$I = u.id
				 ORDER BY u.ord) b$q$,
		cols, id_type, p.source, p.id_column);

	LOOP
		EXIT WHEN batches >= max_batches;
		SELECT array_agg(q.row_id ORDER BY q.queued, q.row_id), array_agg(q.x ORDER BY q.queued, q.row_id)
		  INTO q_ids, q_xmins
		  FROM (SELECT q.row_id, q.queued, q.xmin::text AS x FROM datacore.rag_queue q
				 WHERE q.pipeline = p.name ORDER BY q.queued, q.row_id LIMIT p.batch_size) q;
		EXIT WHEN q_ids IS NULL;
		batches := batches + 1;
		EXECUTE queue_sql INTO b_ids, b_texts, b_payloads, b_vars USING q_ids;
		SELECT array_agg(q.id) INTO gone FROM unnest(q_ids) q(id)
		 WHERE q.id <> ALL (coalesce((SELECT array_agg(b #>> '{}') FROM unnest(b_ids) b), '{}'));
		total := total + datacore.rag_send(p, b_ids, b_texts, b_payloads, b_vars, gone);
		SELECT r.dimension INTO p.dimension FROM datacore.rag_pipelines r WHERE r.name = p.name;
		-- an entry queued again meanwhile has a new xmin and stays
		DELETE FROM datacore.rag_queue q
		 WHERE q.pipeline = p.name
		   AND (q.row_id, q.xmin::text) IN (SELECT * FROM unnest(q_ids, q_xmins));
		EXIT WHEN cardinality(q_ids) < p.batch_size;
	END LOOP;

	IF p.capture = 'watermark' THEN
		upd_type := datacore.rag_column_type(p.source, p.updated_column, 'updated');
		-- $1, $2: the watermark as text, cast back to the columns' types; the
		-- dates and times were stored in ISO 8601, which reads back under any
		-- DateStyle.  An index on (updated, id) makes each batch a range scan.
		batch_sql := format($q$
			SELECT count(*)::integer,
				   array_agg(b.id ORDER BY b.upd, b.rid), array_agg(b.txt ORDER BY b.upd, b.rid),
				   array_agg(b.payload ORDER BY b.upd, b.rid), array_agg(b.vars ORDER BY b.upd, b.rid),
				   (array_agg(to_jsonb(b.upd) #>> '{}' ORDER BY b.upd DESC, b.rid DESC))[1],
				   (array_agg(b.rid::text ORDER BY b.upd DESC, b.rid DESC))[1]
			  FROM (SELECT %1$s, t.%2$I AS upd, t.%3$I AS rid
					  FROM %4$s t
					 WHERE t.%3$I IS NOT NULL AND t.%2$I IS NOT NULL
					   AND ($1::text IS NULL OR (t.%2$I, t.%3$I) > ($1::%5$s, $2::%6$s))
					 ORDER BY t.%2$I, t.%3$I
					 LIMIT %7$s) b$q$,
			cols, p.updated_column, p.id_column, p.source, upd_type, id_type, p.batch_size);
		LOOP
			EXIT WHEN batches >= max_batches;
			EXECUTE batch_sql INTO b_n, b_ids, b_texts, b_payloads, b_vars, b_last_upd, b_last_id
				USING p.last_updated, p.last_id;
			EXIT WHEN b_n = 0;
			batches := batches + 1;
			total := total + datacore.rag_send(p, b_ids, b_texts, b_payloads, b_vars, NULL);
			SELECT r.dimension INTO p.dimension FROM datacore.rag_pipelines r WHERE r.name = p.name;
			-- only now that Qdrant has the batch
			p.last_updated := b_last_upd;
			p.last_id := b_last_id;
			UPDATE datacore.rag_pipelines r
			   SET last_updated = b_last_upd, last_id = b_last_id
			 WHERE r.name = p.name;
			EXIT WHEN b_n < p.batch_size;
		END LOOP;
	END IF;

	UPDATE datacore.rag_pipelines r
	   SET last_run = clock_timestamp(), last_sync_start = started, last_sync_rows = total,
		   last_sync_seconds = extract(epoch FROM clock_timestamp() - started),
		   rows_synced = r.rows_synced + total
	 WHERE r.name = p.name;
	RETURN total + datacore.rag_rebuild(p, max_batches);
END $$;
COMMENT ON FUNCTION rag_sync(text, integer)
	IS 'embed the queued rows and the rows changed since the watermark into the pipeline''s Qdrant collection; returns rows sent';

CREATE FUNCTION rag_search(name text, query text, k integer DEFAULT 5, filter jsonb DEFAULT NULL)
	RETURNS TABLE(id text, score real, payload jsonb)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_search.name);
	vec real[];
BEGIN
	IF query IS NULL THEN
		RETURN;
	END IF;
	IF p.dimension IS NULL THEN
		RAISE EXCEPTION 'rag pipeline "%" has not been synced yet', p.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = format('Fill its collection with: SELECT datacore.rag_sync(%L);', p.name);
	END IF;
	vec := datacore.ollama_embed(query, p.model, p.ollama_server);
	RETURN QUERY
		SELECT s.id, s.score, s.payload
		  FROM datacore.qdrant_search(p.collection, vec, k, filter, p.qdrant_server) s;
END $$;
COMMENT ON FUNCTION rag_search(text, text, integer, jsonb)
	IS 'the k rows of a pipeline nearest to a query text, best first (payload has "id" and "text")';

/*
 * rag_answer: embed the question, take the k nearest chunks (filter: a
 * Qdrant payload filter), number them into "Context:\n[1] …\n\nQ: …" while
 * the passages fit in max_context_chars characters (the first one is cut to
 * fit if it alone does not), and have the model answer from them.  Returns
 * {answer, model, sources: [{id, score, row_id, chunk, key}], prompt_chars,
 * eval_count}; sources lists the passages in the prompt, in their numbers'
 * order (chunk only for chunked pipelines, key only when the payload has
 * one, as an S3 document's does).
 */
CREATE FUNCTION rag_answer(name text, question text, k integer DEFAULT 5, model text DEFAULT NULL,
						   filter jsonb DEFAULT NULL, max_context_chars integer DEFAULT 8000)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_answer.name);
	sources jsonb;
	context text;
	prompt text;
	reply jsonb;
BEGIN
	IF question IS NULL THEN
		RETURN NULL;
	END IF;
	IF max_context_chars IS NULL OR max_context_chars < 1 THEN
		RAISE EXCEPTION 'max_context_chars must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- passages in order while they fit: [n] text, separated by blank lines
	WITH s AS (
		SELECT s.id, s.score, s.payload, s.ord,
			   format('[%s] %s', s.ord, s.payload->>'text') AS passage
		  FROM datacore.rag_search(p.name, question, k, filter) WITH ORDINALITY s(id, score, payload, ord)),
	f AS (
		SELECT s.*, sum(length(s.passage) + 2) OVER (ORDER BY s.ord) - 2 AS upto FROM s)
	SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
				'id', f.id, 'score', f.score, 'row_id', f.payload->'id',
				'chunk', f.payload->'chunk', 'key', f.payload->'key')) ORDER BY f.ord),
		   string_agg(CASE WHEN f.upto > max_context_chars THEN left(f.passage, max_context_chars)
						   ELSE f.passage END, E'\n\n' ORDER BY f.ord)
	  INTO sources, context
	  FROM f
	 WHERE f.upto <= max_context_chars OR f.ord = 1;
	prompt := format(E'Context:\n%s\n\nQ: %s', coalesce(context, '(no passages found)'), question);
	reply := datacore.ollama_generate_json(
		prompt, rag_answer.model,
		'Answer the question using only the numbered context passages, citing them like [1]. '
		'If they do not contain the answer, say that you do not know.',
		NULL, NULL, p.ollama_server);
	RETURN jsonb_build_object('answer', reply->>'response', 'model', reply->>'model',
							  'sources', coalesce(sources, '[]'::jsonb),
							  'prompt_chars', length(prompt), 'eval_count', reply->'eval_count');
END $$;
COMMENT ON FUNCTION rag_answer(text, text, integer, text, jsonb, integer)
	IS 'answer a question from the k nearest chunks of a pipeline: {answer, model, sources, prompt_chars, eval_count}';
