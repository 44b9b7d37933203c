-- RAG pipelines with trigger capture: inserts, updates and deletes of the
-- source queue row ids (statement-level triggers), rag_sync drains the
-- queue; updates of columns the pipeline does not read queue nothing.
\i test/regress/setup.psql
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT datacore.qdrant_drop_collection('regress_rag_capture', if_exists => true);

CREATE TABLE regress_notes (
	id integer PRIMARY KEY,
	title text,
	body text,
	views integer NOT NULL DEFAULT 0
);
CREATE VIEW regress_notes_view AS SELECT * FROM regress_notes;
-- trigger capture needs a table; a watermark pipeline needs an updated column
SELECT datacore.rag_create('regress_capture', 'regress_notes_view', 'id', 'body', NULL, 'regress_rag_capture',
						   capture => 'trigger');
SELECT datacore.rag_create('regress_capture', 'regress_notes', 'id', 'body', NULL, 'regress_rag_capture',
						   payload_columns => '{title}', capture => 'trigger',
						   chunker => 'recursive', chunk_size => 30);
SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
 WHERE tgrelid = 'regress_notes'::regclass ORDER BY tgname;

-- one multi-row statement: one trigger call, every id queued
INSERT INTO regress_notes (id, title, body)
SELECT i, 'note ' || i, 'the body of note number ' || i || '. It has two sentences.'
  FROM generate_series(1, 5) i;
SELECT row_id FROM datacore.rag_queue ORDER BY row_id;
SELECT pipeline, capture, pending, done FROM datacore.rag_status;
SELECT datacore.rag_sync('regress_capture');
SELECT count(*) AS queued FROM datacore.rag_queue;
SELECT datacore.qdrant_count('regress_rag_capture');
SELECT pipeline, pending, done FROM datacore.rag_status;

-- an update of a column the pipeline does not read queues nothing and
-- sends no embed request
SELECT dc_test.clear_log('ollama');
UPDATE regress_notes SET views = views + 1;
SELECT count(*) AS queued FROM datacore.rag_queue;
SELECT datacore.rag_sync('regress_capture');
SELECT count(*) AS embed_requests FROM dc_test.log('ollama');
-- a payload column or the text: only the changed rows are queued
UPDATE regress_notes SET title = 'renamed' WHERE id = 2;
UPDATE regress_notes SET body = body WHERE id = 3;
UPDATE regress_notes SET body = 'short' WHERE id = 4;
SELECT row_id FROM datacore.rag_queue ORDER BY row_id;
SELECT datacore.rag_sync('regress_capture');
SELECT l->'body'->'input' AS input FROM dc_test.log('ollama') l;
SELECT datacore.qdrant_count('regress_rag_capture');
SELECT datacore.qdrant_count('regress_rag_capture', '{"must": [{"key": "title", "match": {"value": "renamed"}}]}') AS renamed;

-- a delete reaches Qdrant: all the row's points go
DELETE FROM regress_notes WHERE id = 1;
SELECT row_id FROM datacore.rag_queue;
SELECT datacore.rag_sync('regress_capture');
SELECT datacore.qdrant_count('regress_rag_capture');
SELECT row_id, chunks FROM datacore.rag_rows ORDER BY row_id;
-- a changed id: the old id's points go, the new id's come
UPDATE regress_notes SET id = 50 WHERE id = 5;
SELECT row_id FROM datacore.rag_queue ORDER BY row_id;
SELECT datacore.rag_sync('regress_capture');
SELECT row_id, chunks FROM datacore.rag_rows ORDER BY row_id;
-- a rolled-back write queues nothing
BEGIN;
INSERT INTO regress_notes (id, title, body) VALUES (99, 'gone', 'never committed');
ROLLBACK;
SELECT count(*) AS queued FROM datacore.rag_queue;

-- rag_enqueue_existing backfills (also rows written before the pipeline)
SELECT datacore.rag_enqueue_existing('regress_capture');
SELECT datacore.rag_sync('regress_capture', max_batches => 1);
SELECT pipeline, pending, done FROM datacore.rag_status;
SELECT datacore.rag_sync('regress_capture');
-- TRUNCATE queues every row that has points; the sync deletes them
TRUNCATE regress_notes;
SELECT pipeline, pending FROM datacore.rag_status;
SELECT datacore.rag_sync('regress_capture');
SELECT datacore.qdrant_count('regress_rag_capture');
-- a bulk load of 25,000 rows: one statement, all pending, counted exactly
INSERT INTO regress_notes (id, title, body) SELECT i, 't', 'b ' || i FROM generate_series(1, 25000) i;
SELECT pipeline, pending, done FROM datacore.rag_status;
-- rag_reset of a trigger pipeline queues every row again
DELETE FROM datacore.rag_queue;
SELECT datacore.rag_reset('regress_capture');
SELECT pipeline, pending FROM datacore.rag_status;

-- the triggers queue for nobody but the pipeline made on their table: the
-- capture function attached to another table, naming the pipeline, does
-- nothing; other roles writing the source queue through the triggers
DELETE FROM datacore.rag_queue;
CREATE TABLE regress_other (id integer, body text);
CREATE TRIGGER regress_fake AFTER INSERT ON regress_other REFERENCING NEW TABLE AS rag_new
	FOR EACH STATEMENT EXECUTE FUNCTION datacore.rag_capture('regress_capture');
INSERT INTO regress_other VALUES (7, 'x');
SELECT count(*) AS queued FROM datacore.rag_queue;
CREATE ROLE regress_rag_writer;
GRANT INSERT, UPDATE, DELETE, SELECT ON regress_notes TO regress_rag_writer;
GRANT USAGE ON SCHEMA datacore TO regress_rag_writer;
SET ROLE regress_rag_writer;
INSERT INTO regress_notes (id, title, body) VALUES (30001, 'w', 'written by another role');
SELECT count(*) AS visible_queue FROM datacore.rag_queue;
RESET ROLE;
SELECT row_id FROM datacore.rag_queue;

-- the capture function runs with its owner's rights, so it must not run
-- code of the pipeline's owner: a payload column of a composite type with a
-- cast to text (that would run as a superuser) is not compared but queued
CREATE ROLE regress_rag_evil;
GRANT USAGE ON SCHEMA datacore TO regress_rag_evil;
GRANT CREATE ON SCHEMA public TO regress_rag_evil;
GRANT USAGE ON FOREIGN SERVER ollama, qdrant TO regress_rag_evil;
SET ROLE regress_rag_evil;
CREATE TABLE regress_evil_log (who name);
CREATE TYPE regress_evil_t AS (v text);
CREATE FUNCTION regress_evil_cast(regress_evil_t) RETURNS text LANGUAGE sql AS
	'INSERT INTO regress_evil_log VALUES (current_user) RETURNING $1.v';
CREATE CAST (regress_evil_t AS text) WITH FUNCTION regress_evil_cast(regress_evil_t);
CREATE TABLE regress_evil (id int PRIMARY KEY, body text, tag regress_evil_t);
SELECT datacore.rag_create('regress_evil', 'regress_evil', 'id', 'body', NULL, 'regress_rag_evil',
						   payload_columns => '{tag}', capture => 'trigger');
INSERT INTO regress_evil VALUES (1, 'x', ROW('a'));
DELETE FROM datacore.rag_queue;
UPDATE regress_evil SET tag = ROW('b');
SELECT row_id FROM datacore.rag_queue;
SELECT count(*) AS casts_run FROM regress_evil_log;
SELECT datacore.rag_drop('regress_evil');
DROP TABLE regress_evil, regress_evil_log;
DROP CAST (regress_evil_t AS text);
DROP FUNCTION regress_evil_cast(regress_evil_t);
DROP TYPE regress_evil_t;
RESET ROLE;
REVOKE ALL ON SCHEMA datacore, public FROM regress_rag_evil;
REVOKE ALL ON FOREIGN SERVER ollama, qdrant FROM regress_rag_evil;
DROP ROLE regress_rag_evil;

-- rag_drop removes the triggers
SELECT datacore.rag_drop('regress_capture', drop_collection => true);
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'regress_notes'::regclass;
DROP TABLE regress_notes CASCADE;
DROP TABLE regress_other;
REVOKE ALL ON SCHEMA datacore FROM regress_rag_writer;
DROP ROLE regress_rag_writer;
