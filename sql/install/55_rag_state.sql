-- RAG pipelines, continued: chunking, the per-row state of a pipeline
-- (rag_rows), the change queue (rag_queue), rows the model refused
-- (rag_errors), trigger capture and the status view.
--
-- The three state tables follow the catalog's ownership rule: a role reads
-- the rows of the pipelines it can see and writes only those of pipelines it
-- owns (row-level security, and a trigger for roles that bypass it).  The
-- capture triggers are the one exception: they run as whoever writes the
-- source, so their function is SECURITY DEFINER and only ever queues ids of
-- the table it fires on for the pipeline made on that table.

CREATE FUNCTION rag_chunks(doc text, chunker text, size integer, overlap integer DEFAULT 0)
	RETURNS TABLE(n integer, chunk text)
	AS 'MODULE_PATHNAME', 'datacore_rag_chunks' LANGUAGE C IMMUTABLE PARALLEL SAFE
	ROWS 8;
COMMENT ON FUNCTION rag_chunks(text, text, integer, integer)
	IS 'chunks of a document (chunker none, character or recursive; size and overlap in characters), numbered from 1';

CREATE FUNCTION rag_format(template text, chunk text, vars jsonb)
	RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_rag_format' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION rag_format(text, text, jsonb)
	IS 'a template with $chunk replaced by the chunk and $name by the key name of vars';

CREATE FUNCTION rag_point_id(pipeline text, row_id text, chunk integer)
	RETURNS uuid
	AS 'MODULE_PATHNAME', 'datacore_rag_point_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION rag_point_id(text, text, integer)
	IS 'Qdrant point id of a chunk: UUID version 5 of pipeline, row id and chunk number';

-- The names a template refers to ($name or ${name}), chunk included, each
-- once, in order of first use.  $$ is a literal dollar sign.
CREATE FUNCTION rag_template_columns(template text) RETURNS name[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $f$
	SELECT coalesce(array_agg(c ORDER BY first), '{}')
	  FROM (SELECT m[1]::name AS c, min(ord) AS first
			  FROM regexp_matches(replace(template, '$$', ''),
								  '\$\{?([A-Za-z_][A-Za-z0-9_]*)', 'g') WITH ORDINALITY r(m, ord)
			 GROUP BY 1) u
$f$;
COMMENT ON FUNCTION rag_template_columns(text) IS 'names a RAG template refers to (internal)';

-- One row per source row that has points: how many chunks it had when it
-- was last sent, so that a row that shrinks (or goes) loses exactly its
-- surplus points.
CREATE TABLE rag_rows (
	pipeline text NOT NULL REFERENCES rag_pipelines (name) ON UPDATE CASCADE ON DELETE CASCADE,
	row_id text NOT NULL,
	chunks integer NOT NULL,
	synced timestamptz NOT NULL DEFAULT now(),
	etag text,
	PRIMARY KEY (pipeline, row_id)
);
COMMENT ON TABLE rag_rows IS 'rows of RAG pipelines that have points in Qdrant, and how many';
COMMENT ON COLUMN rag_rows.etag IS 'S3 documents: the ETag of the object when it was sent';

-- Ids waiting for rag_sync: queued by the capture triggers,
-- rag_enqueue_existing and rag_retry_errors.  A row queued again before the
-- sync took it keeps one entry, with the newer time.
CREATE TABLE rag_queue (
	pipeline text NOT NULL REFERENCES rag_pipelines (name) ON UPDATE CASCADE ON DELETE CASCADE,
	row_id text NOT NULL,
	queued timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (pipeline, row_id)
);
CREATE INDEX rag_queue_order ON rag_queue (pipeline, queued, row_id);
COMMENT ON TABLE rag_queue IS 'row ids of RAG pipelines waiting to be sent by rag_sync';

-- Rows the embedding model refused; the sync went on without them.
CREATE TABLE rag_errors (
	pipeline text NOT NULL REFERENCES rag_pipelines (name) ON UPDATE CASCADE ON DELETE CASCADE,
	row_id text NOT NULL,
	error text NOT NULL,
	sqlstate text NOT NULL,
	attempts integer NOT NULL DEFAULT 1,
	at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, row_id)
);
COMMENT ON TABLE rag_errors IS 'rows of RAG pipelines that the embedding model refused, with the error';

SELECT pg_catalog.pg_extension_config_dump('rag_rows', '');
SELECT pg_catalog.pg_extension_config_dump('rag_queue', '');
SELECT pg_catalog.pg_extension_config_dump('rag_errors', '');

ALTER TABLE rag_rows ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE rag_errors ENABLE ROW LEVEL SECURITY;
-- reading goes through the catalog's own policy: the pipelines a role sees
CREATE POLICY rag_rows_read ON rag_rows FOR SELECT
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline));
CREATE POLICY rag_rows_write ON rag_rows FOR ALL
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
					AND p.owner = pg_catalog.quote_ident(current_user)::regrole))
	WITH CHECK (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
						 AND p.owner = pg_catalog.quote_ident(current_user)::regrole));
CREATE POLICY rag_queue_read ON rag_queue FOR SELECT
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline));
CREATE POLICY rag_queue_write ON rag_queue FOR ALL
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
					AND p.owner = pg_catalog.quote_ident(current_user)::regrole))
	WITH CHECK (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
						 AND p.owner = pg_catalog.quote_ident(current_user)::regrole));
CREATE POLICY rag_errors_read ON rag_errors FOR SELECT
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline));
CREATE POLICY rag_errors_write ON rag_errors FOR ALL
	USING (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
					AND p.owner = pg_catalog.quote_ident(current_user)::regrole))
	WITH CHECK (EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = pipeline
						 AND p.owner = pg_catalog.quote_ident(current_user)::regrole));
GRANT SELECT, INSERT, UPDATE, DELETE ON rag_rows, rag_queue, rag_errors TO PUBLIC;

-- The catalog's rule for roles that bypass row-level security (the only
-- roles that see every pipeline here): only the pipeline's owner (or a
-- superuser) writes its state.  Rows of a pipeline being dropped go by
-- cascade.  Statement-level, with transition tables, so that a batch of
-- thousands of rows costs one check.
CREATE FUNCTION rag_state_guard() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me regrole := quote_ident(current_user)::regrole;
	bad text;
BEGIN
	IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = me) THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'DELETE' THEN
		SELECT o.pipeline INTO bad FROM rag_old o
		 WHERE EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = o.pipeline AND p.owner <> me) LIMIT 1;
	ELSIF TG_OP = 'INSERT' THEN
		SELECT n.pipeline INTO bad FROM rag_new n
		 WHERE EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = n.pipeline AND p.owner <> me) LIMIT 1;
	ELSE
		SELECT x.pipeline INTO bad FROM (SELECT o.pipeline FROM rag_old o UNION SELECT n.pipeline FROM rag_new n) x
		 WHERE EXISTS (SELECT FROM datacore.rag_pipelines p WHERE p.name = x.pipeline AND p.owner <> me) LIMIT 1;
	END IF;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', bad
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Only the pipeline''s owner changes %s.', TG_TABLE_NAME);
	END IF;
	RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION rag_state_guard() FROM PUBLIC;
COMMENT ON FUNCTION rag_state_guard() IS 'refuse writes to the state of other roles'' RAG pipelines, also for BYPASSRLS roles (internal)';
CREATE TRIGGER rag_rows_guard_insert AFTER INSERT ON rag_rows
	REFERENCING NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_rows_guard_update AFTER UPDATE ON rag_rows
	REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_rows_guard_delete AFTER DELETE ON rag_rows
	REFERENCING OLD TABLE AS rag_old FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_queue_guard_insert AFTER INSERT ON rag_queue
	REFERENCING NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_queue_guard_update AFTER UPDATE ON rag_queue
	REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_queue_guard_delete AFTER DELETE ON rag_queue
	REFERENCING OLD TABLE AS rag_old FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_errors_guard_insert AFTER INSERT ON rag_errors
	REFERENCING NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_errors_guard_update AFTER UPDATE ON rag_errors
	REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();
CREATE TRIGGER rag_errors_guard_delete AFTER DELETE ON rag_errors
	REFERENCING OLD TABLE AS rag_old FOR EACH STATEMENT EXECUTE FUNCTION rag_state_guard();

/*
 * rag_send: one batch of rag_sync.  ids, texts, payloads and vars describe
 * the batch's rows (vars: the template's columns); gone lists ids of rows
 * that no longer exist.  Each row is chunked; the chunks are embedded in
 * requests of at most batch_size texts and max_batch_chars characters; all
 * points are upserted; then the points a row no longer has (fewer chunks,
 * blank text, row gone) are deleted and rag_rows records what each row has.
 * Returns the number of rows sent.
 *
 * When a request fails in a way one input can cause (HTTP 400, a bad or
 * empty vector, a reply too large), its texts are embedded one by one: a row
 * with a text that fails alone goes to rag_errors and keeps its old points,
 * the others are sent.  If every text of such a request fails alone, the
 * fault is not the rows' and the error is raised.  Any other error
 * (connection, timeout, 5xx, an open breaker) is raised and the caller's
 * transaction keeps the batch queued.
 *
 * Runs as the caller, who holds the pipeline's lock (rag_sync); everything
 * it writes is the caller's by row-level security.
 */
CREATE FUNCTION rag_send(p rag_pipelines, ids jsonb[], texts text[], payloads jsonb[],
						 vars jsonb[], gone text[])
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c_rows integer[];
	c_ids jsonb[];
	c_texts text[];
	c_payloads jsonb[];
	n integer;
	i integer := 1;
	j integer;
	k integer;
	lo integer;
	chars bigint;
	b_idx integer[];
	b_vecs real[];
	-- the chunks embedded (indexes into c_*), their vectors (one row each)
	-- and where each embed request's share of them ends
	a_idx integer[] := '{}';
	a_vecs real[] := '{}';
	a_ends integer[] := '{}';
	f_ids jsonb[];
	vec real[];
	dim_min integer;
	dim_max integer;
	ok integer;
	failed integer[] := '{}';
	f_state text[] := '{}';
	f_text text[] := '{}';
	e_state text;
	e_msg text;
	e_detail text;
	dels text[];
	s_ids text[];
	s_chunks integer[];
BEGIN
	IF p.owner IS DISTINCT FROM quote_ident(current_user)::regrole THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT array_agg(r.ord ORDER BY r.ord, c.n),
		   array_agg(CASE WHEN p.chunker = 'none' THEN r.id
						  ELSE to_jsonb(datacore.rag_point_id(coalesce(p.parent, p.name), r.id #>> '{}', c.n)) END
					 ORDER BY r.ord, c.n),
		   array_agg(CASE WHEN p.template IS NULL THEN c.chunk
						  ELSE datacore.rag_format(p.template, c.chunk, r.vars) END
					 ORDER BY r.ord, c.n),
		   array_agg(r.payload || jsonb_build_object('id', r.id, 'text', c.chunk)
					 || CASE WHEN p.chunker = 'none' THEN '{}'::jsonb
							 ELSE jsonb_build_object('chunk', c.n) END
					 ORDER BY r.ord, c.n)
	  INTO c_rows, c_ids, c_texts, c_payloads
	  FROM unnest(ids, texts, payloads, vars) WITH ORDINALITY r(id, txt, payload, vars, ord)
	  CROSS JOIN LATERAL datacore.rag_chunks(r.txt, p.chunker, p.chunk_size, p.chunk_overlap) c;
	n := coalesce(cardinality(c_texts), 0);

	WHILE i <= n LOOP
		-- a request closes at batch_size texts or before max_batch_chars
		lo := i;
		chars := length(c_texts[i]);
		i := i + 1;
		WHILE i <= n AND i - lo < p.batch_size
			  AND (p.max_batch_chars IS NULL OR chars + length(c_texts[i]) <= p.max_batch_chars) LOOP
			chars := chars + length(c_texts[i]);
			i := i + 1;
		END LOOP;

		BEGIN
			-- the vectors stay real[] up to the upsert: through jsonb every
			-- element would cost a numeric conversion each way
			SELECT array_agg(lo + e.idx - 1 ORDER BY e.idx), array_agg(e.embedding ORDER BY e.idx),
				   min(cardinality(e.embedding)), max(cardinality(e.embedding))
			  INTO b_idx, b_vecs, dim_min, dim_max
			  FROM datacore.ollama_embed(c_texts[lo:i - 1], p.model, p.ollama_server) e;
			IF coalesce(dim_min, 0) = 0 THEN
				RAISE EXCEPTION 'server "%" returned an empty embedding', p.ollama_server
					USING ERRCODE = 'fdw_invalid_string_format';
			END IF;
		EXCEPTION WHEN data_exception OR fdw_invalid_string_format OR program_limit_exceeded THEN
			-- one input may be at fault: embed the texts one by one
			GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
			b_idx := '{}';
			b_vecs := '{}';
			ok := 0;
			dim_min := NULL;
			FOR j IN lo .. i - 1 LOOP
				CONTINUE WHEN c_rows[j] = ANY (failed);
				BEGIN
					vec := datacore.ollama_embed(c_texts[j], p.model, p.ollama_server);
					IF coalesce(cardinality(vec), 0) = 0 THEN
						RAISE EXCEPTION 'server "%" returned an empty embedding', p.ollama_server
							USING ERRCODE = 'fdw_invalid_string_format';
					END IF;
					IF cardinality(vec) <> coalesce(p.dimension, dim_min, cardinality(vec)) THEN
						RAISE EXCEPTION 'embedding has % dimensions, the collection has %',
								cardinality(vec), coalesce(p.dimension, dim_min)
							USING ERRCODE = 'data_exception';
					END IF;
					dim_min := cardinality(vec);
					b_idx := b_idx || j;
					b_vecs := b_vecs || ARRAY[vec];
					ok := ok + 1;
				EXCEPTION WHEN data_exception OR fdw_invalid_string_format OR program_limit_exceeded THEN
					GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL;
					failed := failed || c_rows[j];
					f_state := f_state || e_state;
					f_text := f_text || CASE WHEN e_detail = '' THEN e_msg ELSE e_msg || ': ' || e_detail END;
				END;
			END LOOP;
			IF ok = 0 AND i - lo > 1 THEN
				RAISE EXCEPTION USING ERRCODE = e_state, MESSAGE = e_msg, DETAIL = e_detail,
					HINT = 'Every text of the request failed on its own too, so the rows were kept queued.';
			END IF;
			dim_max := dim_min;
		END;
		CONTINUE WHEN coalesce(cardinality(b_idx), 0) = 0;

		-- (ollama_embed already refuses replies of mixed sizes)
		IF dim_min <> p.dimension THEN
			RAISE EXCEPTION 'embeddings of rag pipeline "%" have % dimensions, the collection has %',
					p.name, dim_min, p.dimension
				USING ERRCODE = 'data_exception',
					  DETAIL = format('Collection "%s" was created for vectors of %s dimensions.', p.collection, p.dimension),
					  HINT = format('After changing the embedding model, rebuild with: SELECT datacore.rag_reset(%L, drop_collection => true);', p.name);
		END IF;
		IF p.dimension IS NULL THEN
			PERFORM datacore.qdrant_create_collection(p.collection, dim_min, 'Cosine', true,
													  p.qdrant_server);
			p.dimension := dim_min;
			UPDATE datacore.rag_pipelines r SET dimension = dim_min WHERE r.name = p.name;
		END IF;
		a_idx := a_idx || b_idx;
		a_vecs := a_vecs || b_vecs;
		a_ends := a_ends || cardinality(a_idx);
	END LOOP;

	-- one upsert per embed request; a failed row sends none of its chunks:
	-- its old points stay as they were
	SELECT array_agg(ids[f]) INTO f_ids FROM unnest(failed) f;
	lo := 1;
	FOREACH j IN ARRAY a_ends LOOP
		b_idx := a_idx[lo:j];
		b_vecs := a_vecs[lo:j];
		IF f_ids IS NOT NULL THEN
			b_idx := '{}';
			b_vecs := '{}';
			FOR k IN lo .. j LOOP
				CONTINUE WHEN ids[c_rows[a_idx[k]]] = ANY (f_ids);
				b_idx := b_idx || a_idx[k];
				b_vecs := b_vecs || a_vecs[k:k];
			END LOOP;
		END IF;
		lo := j + 1;
		CONTINUE WHEN cardinality(b_idx) = 0;
		PERFORM datacore.qdrant_upsert(p.collection,
									   (SELECT array_agg(c_ids[x] ORDER BY o) FROM unnest(b_idx) WITH ORDINALITY u(x, o)),
									   b_vecs,
									   (SELECT array_agg(c_payloads[x] ORDER BY o) FROM unnest(b_idx) WITH ORDINALITY u(x, o)),
									   true, p.qdrant_server);
	END LOOP;

	-- the points each row (or gone row) no longer has: with chunker none the
	-- row's one point when it has no text; otherwise the chunks from the new
	-- count + 1 up to the count rag_rows remembers
	SELECT array_agg(x.row_id), array_agg(x.chunks) INTO s_ids, s_chunks
	  FROM (SELECT DISTINCT ON (y.row_id) y.row_id, y.chunks
			  FROM (SELECT r.id #>> '{}' AS row_id, coalesce(k.chunks, 0) AS chunks
					  FROM unnest(ids) WITH ORDINALITY r(id, ord)
					  LEFT JOIN (SELECT c, count(*)::integer AS chunks FROM unnest(c_rows) c GROUP BY c) k
						ON k.c = r.ord
					 WHERE r.ord <> ALL (failed)
					UNION ALL
					SELECT g, 0 FROM unnest(gone) g) y
			 ORDER BY y.row_id, y.chunks DESC) x;
	SELECT array_agg(d) INTO dels FROM (
		SELECT s.row_id AS d FROM unnest(s_ids, s_chunks) s(row_id, chunks)
		 WHERE p.chunker = 'none' AND s.chunks = 0
		UNION ALL
		SELECT datacore.rag_point_id(coalesce(p.parent, p.name), s.row_id, g)::text
		  FROM unnest(s_ids, s_chunks) s(row_id, chunks)
		  JOIN datacore.rag_rows r ON r.pipeline = p.name AND r.row_id = s.row_id
		 CROSS JOIN generate_series(s.chunks + 1, r.chunks) g
		 WHERE p.chunker <> 'none') x;
	IF dels IS NOT NULL AND p.dimension IS NOT NULL THEN
		PERFORM datacore.qdrant_delete(p.collection, dels, true, p.qdrant_server);
	END IF;

	INSERT INTO datacore.rag_rows AS r (pipeline, row_id, chunks)
		SELECT p.name, s.row_id, s.chunks FROM unnest(s_ids, s_chunks) s(row_id, chunks) WHERE s.chunks > 0
		ON CONFLICT (pipeline, row_id) DO UPDATE SET chunks = excluded.chunks, synced = excluded.synced;
	DELETE FROM datacore.rag_rows r USING unnest(s_ids, s_chunks) s(row_id, chunks)
	 WHERE r.pipeline = p.name AND r.row_id = s.row_id AND s.chunks = 0;
	DELETE FROM datacore.rag_errors e
	 WHERE e.pipeline = p.name AND e.row_id = ANY (s_ids);
	INSERT INTO datacore.rag_errors AS e (pipeline, row_id, error, sqlstate)
		SELECT DISTINCT ON (ids[f.r] #>> '{}') p.name, ids[f.r] #>> '{}', f.msg, f.state
		  FROM unnest(failed, f_state, f_text) f(r, state, msg)
		 ORDER BY ids[f.r] #>> '{}'
		ON CONFLICT (pipeline, row_id) DO UPDATE
		   SET error = excluded.error, sqlstate = excluded.sqlstate,
			   attempts = e.attempts + 1, at = excluded.at;
	RETURN coalesce(cardinality(s_ids), 0);
END $$;
COMMENT ON FUNCTION rag_send(rag_pipelines, jsonb[], text[], jsonb[], jsonb[], text[])
	IS 'embed, upsert and delete one batch of a RAG pipeline''s rows (internal, called by rag_sync)';

-- Whether every named column of rel that exists has a built-in type: below
-- FirstNormalObjectId, looking through domains and array elements.
-- Built-in types have only built-in casts and operators.
CREATE FUNCTION rag_builtin_types(rel regclass, cols name[]) RETURNS boolean
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
	WITH RECURSIVE t(oid) AS (
		SELECT a.atttypid FROM pg_attribute a
		 WHERE a.attrelid = rel AND a.attname = ANY (cols) AND a.attnum > 0 AND NOT a.attisdropped
		UNION
		SELECT CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.typelem END
		  FROM pg_type y JOIN t ON y.oid = t.oid
		 WHERE y.typtype = 'd' OR y.typelem <> 0)
	SELECT coalesce(bool_and(t.oid < 16384 OR y.typtype = 'd'), true)
	  FROM t JOIN pg_type y ON y.oid = t.oid
$f$;
COMMENT ON FUNCTION rag_builtin_types(regclass, name[]) IS 'whether columns have built-in types only (internal)';

/*
 * The capture trigger of a trigger pipeline (TG_ARGV[0] names it): queues
 * the ids of the rows a statement inserted, deleted or changed.  An update
 * queues a row only when a column the pipeline reads (id, text, payload or
 * template columns) changed, so unrelated updates cost no embedding.  A
 * TRUNCATE queues every row that has points, which the sync then deletes.
 *
 * It runs as whoever writes the source, who need not be allowed to write
 * the queue, hence SECURITY DEFINER; it only queues ids, and only for the
 * pipeline whose source is the table it fires on, so attaching it elsewhere
 * queues nothing (and the sync reads the rows with the owner's rights).
 */
CREATE FUNCTION rag_capture() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	cmp text;
	-- $1: the pipeline and its rebuilds (rag_change_model)
	ins text := 'INSERT INTO datacore.rag_queue AS q (pipeline, row_id) SELECT DISTINCT n, x.id FROM (%s) x, unnest($1) n '
				'WHERE x.id IS NOT NULL ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued';
	names text[];
BEGIN
	SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = TG_ARGV[0];
	IF NOT FOUND OR p.capture <> 'trigger' OR p.source <> TG_RELID OR p.parent IS NOT NULL THEN
		RETURN NULL;
	END IF;
	names := ARRAY[p.name] || ARRAY(SELECT r.name FROM datacore.rag_pipelines r WHERE r.parent = p.name);
	-- A user-defined type can bring a user-defined cast or operator, which
	-- would run here with this function's rights.  So ids are read only from
	-- a column of a built-in type (through domains and arrays), and rows are
	-- compared only on such columns; otherwise every updated row is queued.
	IF NOT datacore.rag_builtin_types(p.source, ARRAY[p.id_column]) THEN
		RAISE WARNING 'rag pipeline "%" queued nothing: its id column is not of a built-in type', p.name;
		RETURN NULL;
	END IF;
	IF TG_OP = 'INSERT' THEN
		EXECUTE format(ins, format('SELECT n.%I::text AS id FROM rag_new n', p.id_column)) USING names;
	ELSIF TG_OP = 'DELETE' THEN
		EXECUTE format(ins, format('SELECT o.%I::text AS id FROM rag_old o', p.id_column)) USING names;
	ELSIF TG_OP = 'UPDATE' THEN
		SELECT string_agg(format('o.%1$I::text IS NOT DISTINCT FROM n.%1$I::text', c), ' AND ')
		  INTO cmp
		  FROM (SELECT p.text_column AS c
				UNION SELECT unnest(p.payload_columns)
				UNION SELECT u FROM unnest(datacore.rag_template_columns(p.template)) u WHERE u <> 'chunk') cols;
		IF NOT datacore.rag_builtin_types(p.source, p.text_column || p.payload_columns
											|| datacore.rag_template_columns(p.template)) THEN
			cmp := 'false';
		END IF;
		EXECUTE format(ins, format(
			'SELECT n.%1$I::text AS id FROM rag_new n WHERE NOT EXISTS '
			'(SELECT FROM rag_old o WHERE o.%1$I = n.%1$I AND %2$s) '
			'UNION ALL SELECT o.%1$I::text FROM rag_old o WHERE NOT EXISTS '
			'(SELECT FROM rag_new n WHERE n.%1$I = o.%1$I)', p.id_column, cmp)) USING names;
	ELSE
		INSERT INTO datacore.rag_queue AS q (pipeline, row_id)
			SELECT r.pipeline, r.row_id FROM datacore.rag_rows r WHERE r.pipeline = ANY (names)
			ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued;
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION rag_capture() IS 'trigger queueing the changed rows of a trigger-capture RAG pipeline (internal)';

-- Create (or drop) the capture triggers of a pipeline on its source, named
-- "rag:<pipeline>:<event>".  Statement-level with transition tables, so a
-- bulk load queues its rows in one statement.
CREATE FUNCTION rag_capture_triggers(p rag_pipelines, make boolean) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ev record;
BEGIN
	FOR ev IN SELECT * FROM (VALUES ('i', 'INSERT', 'REFERENCING NEW TABLE AS rag_new'),
									('u', 'UPDATE', 'REFERENCING OLD TABLE AS rag_old NEW TABLE AS rag_new'),
									('d', 'DELETE', 'REFERENCING OLD TABLE AS rag_old'),
									('t', 'TRUNCATE', '')) v(tag, event, ref)
	LOOP
		IF make THEN
			EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION datacore.rag_capture(%L)',
						   format('rag:%s:%s', p.name, ev.tag), ev.event, p.source, ev.ref, p.name);
		ELSIF EXISTS (SELECT FROM pg_class c WHERE c.oid = p.source) THEN
			EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', format('rag:%s:%s', p.name, ev.tag), p.source);
		END IF;
	END LOOP;
END $$;
COMMENT ON FUNCTION rag_capture_triggers(rag_pipelines, boolean) IS 'create or drop the capture triggers of a RAG pipeline (internal)';

CREATE FUNCTION rag_enqueue_existing(name text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_enqueue_existing.name, true);
	n bigint;
BEGIN
	PERFORM datacore.rag_check(p);
	IF p.s3_bucket IS NOT NULL THEN
		INSERT INTO datacore.rag_queue AS q (pipeline, row_id)
			SELECT p.name, o.key FROM datacore.s3_list(p.s3_bucket, p.s3_prefix, p.s3_server) o
			 WHERE datacore.rag_s3_kind(o.key) IS NOT NULL
			ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued;
		GET DIAGNOSTICS n = ROW_COUNT;
		RETURN n;
	END IF;
	EXECUTE format('INSERT INTO datacore.rag_queue AS q (pipeline, row_id) '
				   'SELECT DISTINCT $1, t.%1$I::text FROM %2$s t WHERE t.%1$I IS NOT NULL '
				   'ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued',
				   p.id_column, p.source) USING p.name;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION rag_enqueue_existing(text)
	IS 'queue every row of a RAG pipeline''s source for the next rag_sync; returns the rows queued';

CREATE FUNCTION rag_retry_errors(name text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_retry_errors.name, true);
	n bigint;
BEGIN
	INSERT INTO datacore.rag_queue AS q (pipeline, row_id)
		SELECT e.pipeline, e.row_id FROM datacore.rag_errors e WHERE e.pipeline = p.name
		ON CONFLICT (pipeline, row_id) DO UPDATE SET queued = excluded.queued;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION rag_retry_errors(text)
	IS 'queue the rows in rag_errors of a pipeline for the next rag_sync; returns the rows queued';

-- Documents in S3: a pipeline whose source is the objects under a bucket
-- and prefix (rag_create_s3).  Text (.txt, .text), Markdown (.md,
-- .markdown) and JSON Lines (.jsonl) objects are documents; the object key
-- is the row id, its ETag the change marker (rag_rows.etag).

-- The kind of document an object key names: text, markdown, jsonl or NULL.
CREATE FUNCTION rag_s3_kind(key text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $f$
	SELECT CASE WHEN key ~* '\.(txt|text)$' THEN 'text'
				WHEN key ~* '\.(md|markdown)$' THEN 'markdown'
				WHEN key ~* '\.jsonl$' THEN 'jsonl' END
$f$;
COMMENT ON FUNCTION rag_s3_kind(text) IS 'document kind of an S3 key for RAG: text, markdown, jsonl or NULL (internal)';

-- The text of a document: the object as it is, except JSON Lines, where each
-- non-blank line is an object whose "text" member (or, without one, the
-- whole line) is a paragraph.
CREATE FUNCTION rag_s3_text(key text, body text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $f$
	SELECT CASE WHEN datacore.rag_s3_kind(key) = 'jsonl'
				THEN (SELECT string_agg(coalesce(l::jsonb->>'text', l), E'\n\n' ORDER BY n)
						FROM regexp_split_to_table(body, E'\r?\n') WITH ORDINALITY s(l, n)
					   WHERE btrim(l) <> '')
				ELSE body END
$f$;
COMMENT ON FUNCTION rag_s3_text(text, text) IS 'text of an S3 document for RAG (internal)';

-- What a sync of an S3 pipeline has to do: keys of documents that are new,
-- changed (another ETag) or queued, with their ETag, and keys that have
-- points but are gone (etag NULL).  A document in rag_errors is skipped until
-- it is queued again (rag_retry_errors).  One listing of the prefix.
CREATE FUNCTION rag_s3_changes(p rag_pipelines) RETURNS TABLE(key text, etag text)
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $f$
	WITH o AS (SELECT o.key, o.etag FROM datacore.s3_list(p.s3_bucket, p.s3_prefix, p.s3_server) o
				WHERE datacore.rag_s3_kind(o.key) IS NOT NULL)
	SELECT o.key, o.etag FROM o
	  LEFT JOIN datacore.rag_rows r ON r.pipeline = p.name AND r.row_id = o.key
	 WHERE EXISTS (SELECT FROM datacore.rag_queue q WHERE q.pipeline = p.name AND q.row_id = o.key)
		OR r.etag IS DISTINCT FROM o.etag
		   AND NOT EXISTS (SELECT FROM datacore.rag_errors e WHERE e.pipeline = p.name AND e.row_id = o.key)
	UNION ALL
	SELECT r.row_id, NULL FROM datacore.rag_rows r
	 WHERE r.pipeline = p.name AND NOT EXISTS (SELECT FROM o WHERE o.key = r.row_id)
	UNION ALL
	SELECT q.row_id, NULL FROM datacore.rag_queue q
	 WHERE q.pipeline = p.name AND NOT EXISTS (SELECT FROM o WHERE o.key = q.row_id)
	   AND NOT EXISTS (SELECT FROM datacore.rag_rows r WHERE r.pipeline = p.name AND r.row_id = q.row_id)
	 ORDER BY 1
$f$;
COMMENT ON FUNCTION rag_s3_changes(rag_pipelines) IS 'documents an S3 RAG pipeline must send or delete (internal)';

CREATE FUNCTION rag_create_s3(name text, bucket text, prefix text, collection text,
		chunker text DEFAULT 'recursive', chunk_size integer DEFAULT 1000,
		chunk_overlap integer DEFAULT 0, template text DEFAULT NULL,
		model text DEFAULT NULL, batch_size integer DEFAULT 64, max_batch_chars integer DEFAULT NULL,
		s3_server name DEFAULT 'minio', ollama_server name DEFAULT 'ollama',
		qdrant_server name DEFAULT 'qdrant')
	RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
BEGIN
	PERFORM datacore.rag_create_check(rag_create_s3.name, rag_create_s3.collection, rag_create_s3.batch_size,
									  rag_create_s3.model);
	p.name := rag_create_s3.name;
	p.id_column := 'key';
	p.text_column := 'text';
	p.collection := rag_create_s3.collection;
	p.model := rag_create_s3.model;
	p.batch_size := rag_create_s3.batch_size;
	p.payload_columns := '{}';
	p.ollama_server := rag_create_s3.ollama_server;
	p.qdrant_server := rag_create_s3.qdrant_server;
	p.chunker := rag_create_s3.chunker;
	p.chunk_size := rag_create_s3.chunk_size;
	p.chunk_overlap := coalesce(rag_create_s3.chunk_overlap, 0);
	p.template := rag_create_s3.template;
	p.capture := 'etag';
	p.max_batch_chars := rag_create_s3.max_batch_chars;
	p.s3_bucket := rag_create_s3.bucket;
	p.s3_prefix := coalesce(rag_create_s3.prefix, '');
	p.s3_server := rag_create_s3.s3_server;
	PERFORM datacore.rag_check(p);
	BEGIN
		INSERT INTO datacore.rag_pipelines (name, id_column, text_column, collection, model, batch_size,
				ollama_server, qdrant_server, chunker, chunk_size, chunk_overlap, template, capture,
				max_batch_chars, s3_bucket, s3_prefix, s3_server)
			VALUES (p.name, p.id_column, p.text_column, p.collection, p.model, p.batch_size,
					p.ollama_server, p.qdrant_server, p.chunker, p.chunk_size, p.chunk_overlap, p.template,
					p.capture, p.max_batch_chars, p.s3_bucket, p.s3_prefix, p.s3_server);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'rag pipeline "%" already exists', p.name
			USING ERRCODE = 'duplicate_object';
	END;
END $$;
COMMENT ON FUNCTION rag_create_s3(text, text, text, text, text, integer, integer, text, text, integer, integer, name, name, name)
	IS 'register a RAG pipeline of the text, Markdown and JSON Lines documents under an S3 bucket and prefix';

-- The checks of rag_check that are particular to S3 documents.
CREATE FUNCTION rag_check_s3(p rag_pipelines) RETURNS void
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p.s3_bucket = '' THEN
		RAISE EXCEPTION 'bucket must be a non-empty string' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p.s3_server IS NULL THEN
		RAISE EXCEPTION 'server name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF p.chunker IS NOT DISTINCT FROM 'none' THEN
		RAISE EXCEPTION 'a pipeline of S3 documents needs a chunker'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Its points are chunks, with ids derived from the object key.',
				  HINT = 'Pass chunker => ''recursive'' or ''character''.';
	END IF;
END $$;
COMMENT ON FUNCTION rag_check_s3(rag_pipelines) IS 'validate the S3 part of a RAG pipeline (internal)';

/*
 * rag_sync of S3 documents: list the prefix once, then send the new,
 * changed and queued documents batch_size at a time (fetched with
 * s3_get_text) and delete the points of documents that are gone; rag_rows
 * records each document's ETag once Qdrant has it.  The payload carries
 * bucket, key (also as "id"), chunk and text.
 */
CREATE FUNCTION rag_sync_s3(p rag_pipelines, max_batches integer) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	keys text[];
	etags text[];
	gone text[];
	b_keys text[];
	b_etags text[];
	b_ids jsonb[];
	b_texts text[];
	b_payloads jsonb[];
	i integer := 1;
	n integer;
	batches integer := 0;
	total bigint := 0;
	started timestamptz := clock_timestamp();
BEGIN
	IF p.owner IS DISTINCT FROM quote_ident(current_user)::regrole THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT array_agg(c.key ORDER BY c.key) FILTER (WHERE c.etag IS NOT NULL),
		   array_agg(c.etag ORDER BY c.key) FILTER (WHERE c.etag IS NOT NULL),
		   array_agg(c.key ORDER BY c.key) FILTER (WHERE c.etag IS NULL)
	  INTO keys, etags, gone
	  FROM datacore.rag_s3_changes(p) c;
	n := coalesce(cardinality(keys), 0);
	WHILE (i <= n OR gone IS NOT NULL) AND (max_batches IS NULL OR batches < max_batches) LOOP
		b_keys := keys[i:i + p.batch_size - 1];
		b_etags := etags[i:i + p.batch_size - 1];
		SELECT array_agg(to_jsonb(u.k) ORDER BY u.o),
			   array_agg(datacore.rag_s3_text(u.k, datacore.s3_get_text(p.s3_bucket, u.k, p.s3_server)) ORDER BY u.o),
			   array_agg(jsonb_build_object('bucket', p.s3_bucket, 'key', u.k) ORDER BY u.o)
		  INTO b_ids, b_texts, b_payloads
		  FROM unnest(b_keys) WITH ORDINALITY u(k, o);
		total := total + datacore.rag_send(p, b_ids, b_texts, b_payloads, b_payloads, gone);
		SELECT r.dimension INTO p.dimension FROM datacore.rag_pipelines r WHERE r.name = p.name;
		UPDATE datacore.rag_rows r SET etag = u.e
		  FROM unnest(b_keys, b_etags) u(k, e)
		 WHERE r.pipeline = p.name AND r.row_id = u.k;
		DELETE FROM datacore.rag_queue q
		 WHERE q.pipeline = p.name AND (q.row_id = ANY (b_keys) OR q.row_id = ANY (gone));
		gone := NULL;
		i := i + p.batch_size;
		batches := batches + 1;
	END LOOP;
	UPDATE datacore.rag_pipelines r
	   SET last_run = clock_timestamp(), last_sync_start = started, last_sync_rows = total,
		   last_sync_seconds = extract(epoch FROM clock_timestamp() - started),
		   rows_synced = r.rows_synced + total
	 WHERE r.name = p.name;
	RETURN total;
END $$;
COMMENT ON FUNCTION rag_sync_s3(rag_pipelines, integer) IS 'rag_sync of a pipeline of S3 documents (internal)';

/*
 * rag_change_model: rebuild a pipeline's collection under another embedding
 * model without interrupting searches.  A second catalog row, the rebuild
 * (name "next~<hash>", parent = the pipeline), embeds every row into
 * new_collection with new_model as part of each rag_sync of the pipeline
 * (rag_rebuild), while rag_search and rag_answer keep using the old
 * collection.  Once the rebuild has nothing pending, the same sync switches
 * the pipeline to the new model and collection in one catalog update, and the
 * next sync drops the old collection.  Calling it again replaces a rebuild
 * under way.
 */
CREATE FUNCTION rag_change_model(name text, new_model text, new_collection text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_change_model.name, true);
	s datacore.rag_pipelines;
	old record;
BEGIN
	IF p.parent IS NOT NULL THEN
		RAISE EXCEPTION 'rag pipeline "%" is the rebuild of pipeline "%"', p.name, p.parent
			USING ERRCODE = 'wrong_object_type',
				  HINT = format('Change the model of "%s" instead.', p.parent);
	END IF;
	IF new_model IS NULL OR new_model = '' THEN
		RAISE EXCEPTION 'new_model must be a non-empty string'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	s := p;
	s.name := 'next~' || left(md5(p.name), 24);
	s.parent := p.name;
	s.model := new_model;
	s.collection := coalesce(new_collection,
							 left(p.collection || '__' || regexp_replace(new_model, '[^A-Za-z0-9_-]+', '_', 'g'), 255));
	IF s.collection = p.collection OR s.collection = '' THEN
		RAISE EXCEPTION 'the new collection must differ from the current one'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The pipeline uses collection "%s".', p.collection);
	END IF;
	s.dimension := NULL;
	s.last_updated := NULL;
	s.last_id := NULL;
	s.rows_synced := 0;
	s.last_run := NULL;
	s.last_sync_start := NULL;
	s.last_sync_rows := NULL;
	s.last_sync_seconds := NULL;
	s.retired_collection := NULL;
	s.created := now();
	PERFORM datacore.rag_check(s);
	FOR old IN SELECT r.name, r.collection FROM datacore.rag_pipelines r WHERE r.parent = p.name LOOP
		PERFORM datacore.qdrant_drop_collection(old.collection, true, p.qdrant_server);
		DELETE FROM datacore.rag_pipelines r WHERE r.name = old.name;
	END LOOP;
	-- a collection left from an earlier attempt would hold stale points
	PERFORM datacore.qdrant_drop_collection(s.collection, true, s.qdrant_server);
	INSERT INTO datacore.rag_pipelines SELECT s.*;
	IF s.capture = 'trigger' THEN
		PERFORM datacore.rag_enqueue_existing(s.name);
	END IF;
	RETURN s.collection;
END $$;
COMMENT ON FUNCTION rag_change_model(text, text, text)
	IS 'rebuild a pipeline''s collection with another embedding model during its syncs, then switch to it; returns the new collection';

/*
 * rag_rebuild: the part of rag_sync(p) that advances a rebuild of p under
 * way and switches p to it once nothing is pending.  Returns the rows the
 * rebuild sent.
 */
CREATE FUNCTION rag_rebuild(p rag_pipelines, max_batches integer) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s datacore.rag_pipelines;
	sent bigint;
BEGIN
	IF p.parent IS NOT NULL THEN
		RETURN 0;
	END IF;
	SELECT * INTO s FROM datacore.rag_pipelines r WHERE r.parent = p.name;
	IF NOT FOUND THEN
		RETURN 0;
	END IF;
	sent := datacore.rag_sync(s.name, max_batches);
	IF datacore.rag_pending(s.name) > 0 THEN
		RETURN sent;
	END IF;
	SELECT * INTO s FROM datacore.rag_pipelines r WHERE r.name = s.name;
	-- the switch: searches use the new collection from this commit on
	DELETE FROM datacore.rag_rows r WHERE r.pipeline = p.name;
	DELETE FROM datacore.rag_errors e WHERE e.pipeline = p.name;
	UPDATE datacore.rag_rows r SET pipeline = p.name WHERE r.pipeline = s.name;
	UPDATE datacore.rag_errors e SET pipeline = p.name WHERE e.pipeline = s.name;
	UPDATE datacore.rag_pipelines r
	   SET model = s.model, collection = s.collection, dimension = s.dimension,
		   last_updated = s.last_updated, last_id = s.last_id,
		   retired_collection = p.collection
	 WHERE r.name = p.name;
	DELETE FROM datacore.rag_pipelines r WHERE r.name = s.name;
	RETURN sent;
END $$;
COMMENT ON FUNCTION rag_rebuild(rag_pipelines, integer)
	IS 'advance a model change of a RAG pipeline and switch to it when complete (internal, called by rag_sync)';

-- Rows of a pipeline that the next sync would send, counted exactly: the
-- queue, plus for a watermark pipeline the rows after the watermark that are
-- not queued.  NULL when the caller may not read the source's columns.
CREATE FUNCTION rag_pending(name text) RETURNS bigint
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_pending.name);
	n bigint;
	m bigint;
	t_id regtype;
	t_upd regtype;
BEGIN
	SELECT count(*) INTO n FROM datacore.rag_queue q WHERE q.pipeline = p.name;
	IF p.s3_bucket IS NOT NULL THEN
		-- new or changed objects not queued, and objects gone: one listing
		SELECT n + count(*) INTO n FROM datacore.rag_s3_changes(p) c
		 WHERE NOT EXISTS (SELECT FROM datacore.rag_queue q WHERE q.pipeline = p.name AND q.row_id = c.key);
		RETURN n;
	END IF;
	IF p.capture <> 'watermark' THEN
		RETURN n;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.source)
	   OR NOT has_column_privilege(p.source, p.id_column, 'SELECT')
	   OR NOT has_column_privilege(p.source, p.updated_column, 'SELECT') THEN
		RETURN NULL;
	END IF;
	t_id := datacore.rag_column_type(p.source, p.id_column, 'id');
	t_upd := datacore.rag_column_type(p.source, p.updated_column, 'updated');
	EXECUTE format($q$
		SELECT count(*) FROM %1$s t
		 WHERE t.%2$I IS NOT NULL AND t.%3$I IS NOT NULL
		   AND ($1::text IS NULL OR (t.%3$I, t.%2$I) > ($1::%4$s, $2::%5$s))
		   AND NOT EXISTS (SELECT FROM datacore.rag_queue q WHERE q.pipeline = $3 AND q.row_id = t.%2$I::text)$q$,
		p.source, p.id_column, p.updated_column, t_upd, t_id)
		INTO m USING p.last_updated, p.last_id, p.name;
	RETURN n + m;
END $$;
COMMENT ON FUNCTION rag_pending(text) IS 'rows a RAG pipeline''s next rag_sync would send, counted exactly';

-- security_invoker: the catalog's row-level security applies to whoever
-- reads the view, not to the view's owner.
CREATE VIEW rag_status WITH (security_invoker = true) AS
SELECT p.name AS pipeline, p.owner, p.capture, p.source, p.collection, p.model, p.chunker,
	   datacore.rag_pending(p.name) AS pending,
	   (SELECT count(*) FROM datacore.rag_rows r WHERE r.pipeline = p.name) AS done,
	   (SELECT count(*) FROM datacore.rag_errors e WHERE e.pipeline = p.name) AS errors,
	   (SELECT e.error FROM datacore.rag_errors e WHERE e.pipeline = p.name
		 ORDER BY e.at DESC, e.row_id LIMIT 1) AS last_error,
	   p.last_sync_start, p.last_run AS last_sync_end, p.last_sync_rows,
	   CASE WHEN p.last_sync_seconds > 0 THEN round((p.last_sync_rows / p.last_sync_seconds)::numeric, 1) END
		   AS rows_per_second,
	   p.rows_synced, p.dimension
  FROM datacore.rag_pipelines p;
COMMENT ON VIEW rag_status IS 'progress of each visible RAG pipeline: rows pending, done and in error, and the last sync';
GRANT SELECT ON rag_status TO PUBLIC;
