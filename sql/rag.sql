-- RAG pipelines: catalog and validation, batched incremental sync with its
-- watermark, failure paths, search, answers, privileges and scheduling.
\i test/regress/setup.psql
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT datacore.qdrant_drop_collection(c, if_exists => true)
  FROM unnest(ARRAY['regress_rag_docs', 'regress_rag_uuid', 'regress_rag_mine', 'regress_rag_team',
				 'regress_rag_gone']) c;

CREATE TABLE regress_docs (
	id bigint PRIMARY KEY,
	body text,
	topic text NOT NULL,
	updated timestamptz NOT NULL
);
CREATE INDEX ON regress_docs (updated, id);
INSERT INTO regress_docs
SELECT i, t, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END,
	   '2026-01-01 00:00:00+00'::timestamptz + i * interval '1 minute'
  FROM unnest(ARRAY['the cat sat on the mat',
					'dogs chase cats in the park',
					'postgres stores rows in tables',
					'qdrant stores vectors for similarity search',
					'ollama runs language models locally',
					'redis caches hot keys in memory',
					'minio keeps objects in buckets',
					'cron runs jobs on a schedule',
					'embeddings map text to vectors',
					'watermarks make sync incremental']) WITH ORDINALITY u(t, i);

-- validation: columns, types, names, servers, sizes
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'topic', 'body', 'updated', 'regress_rag_docs');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'nobody', 'updated', 'regress_rag_docs');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'updated', 'updated', 'regress_rag_docs');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'topic', 'regress_rag_docs');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs',
						   payload_columns => '{topic, id}');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs',
						   payload_columns => '{topic, topic}');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs',
						   batch_size => 0);
SELECT datacore.rag_create('', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs');
SELECT datacore.rag_create(repeat('x', 49), 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', '');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs',
						   ollama_server => 'regress_nosuch');
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs',
						   qdrant_server => 'redis');
SELECT datacore.rag_create('regress_docs', 'regress_no_table', 'id', 'body', 'updated', 'regress_rag_docs');
SELECT datacore.rag_sync('regress_nosuch');
SELECT count(*) AS pipelines FROM datacore.rag_pipelines;

SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs',
						   payload_columns => '{topic}', batch_size => 4);
SELECT datacore.rag_create('regress_docs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs');
SELECT name, owner = current_user::regrole AS mine, source, id_column, text_column, updated_column, payload_columns, collection,
	   model, batch_size, ollama_server, qdrant_server, dimension, last_updated, last_id,
	   last_run, rows_synced
  FROM datacore.rag_pipelines;
SELECT datacore.rag_search('regress_docs', 'cats');

-- first sync: 10 rows in batches of 4 = 3 embed requests and 3 upserts,
-- the collection created once with the dimension of the embeddings
SELECT dc_test.clear_log('ollama'), dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_docs');
SELECT l->>'path' AS path, l->'body'->>'model' AS model, l->'body'->'input' AS input
  FROM dc_test.log('ollama') l;
SELECT l->>'method' AS method, l->>'path' AS path, l->'query' AS query,
	   CASE WHEN l->'body' ? 'points'
			THEN jsonb_build_object('ids', jsonb_path_query_array(l->'body', '$.points[*].id'),
									'dims', jsonb_path_query_array(l->'body', '$.points[*].vector.size()'))
			ELSE l->'body' END AS body
  FROM dc_test.log('qdrant') l;
SELECT l->'body'->'points'->0->'payload' AS first_payload
  FROM dc_test.log('qdrant') l WHERE l->>'method' = 'PUT' AND l->'body' ? 'points' LIMIT 1;
SELECT dimension, last_updated, last_id, rows_synced, last_run IS NOT NULL AS ran
  FROM datacore.rag_pipelines;
SELECT datacore.qdrant_count('regress_rag_docs');

-- nothing changed: one source query, no request
SELECT dc_test.clear_log('ollama'), dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_docs');
SELECT (SELECT count(*) FROM dc_test.log('ollama')) AS ollama_requests,
	   (SELECT count(*) FROM dc_test.log('qdrant')) AS qdrant_requests;

-- incremental: two changed rows and one new row, whatever the DateStyle
SET DateStyle = 'SQL, DMY';
UPDATE regress_docs SET body = 'the dog sat on the mat', updated = updated + interval '1 hour' WHERE id = 1;
UPDATE regress_docs SET topic = 'changed', updated = updated + interval '1 hour' WHERE id = 5;
INSERT INTO regress_docs VALUES (11, 'pg_cron schedules the sync', 'odd', '2026-01-01 00:30:00+00');
SELECT dc_test.clear_log('ollama'), dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_docs');
RESET DateStyle;
SELECT l->'body'->'input' AS input FROM dc_test.log('ollama') l;
SELECT jsonb_path_query_array(l->'body', '$.points[*].id') AS ids,
	   jsonb_path_query_array(l->'body', '$.points[*].payload.topic') AS topics
  FROM dc_test.log('qdrant') l;
SELECT last_updated, last_id, rows_synced FROM datacore.rag_pipelines;
SELECT payload FROM datacore.qdrant_get('regress_rag_docs', ARRAY[1, 5]::bigint[]) ORDER BY id;

-- a row whose text became NULL or blank is removed from the collection
UPDATE regress_docs SET body = NULL, updated = updated + interval '2 hours' WHERE id = 7;
UPDATE regress_docs SET body = '  ', updated = updated + interval '2 hours' WHERE id = 8;
SELECT dc_test.clear_log('ollama'), dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_docs');
SELECT l->>'path' AS path, l->'body' AS body FROM dc_test.log('qdrant') l;
SELECT count(*) AS ollama_requests FROM dc_test.log('ollama');
SELECT datacore.qdrant_count('regress_rag_docs');

-- max_batches bounds one call's work; the next call goes on from there
INSERT INTO regress_docs
SELECT i, 'extra document number ' || i, 'odd', '2026-01-02 00:00:00+00'::timestamptz + i * interval '1 second'
  FROM generate_series(20, 25) i;
SELECT datacore.rag_sync('regress_docs', max_batches => 1);
SELECT last_id FROM datacore.rag_pipelines;
SELECT datacore.rag_sync('regress_docs', max_batches => 0);
SELECT datacore.rag_sync('regress_docs');
SELECT last_id, rows_synced FROM datacore.rag_pipelines;

-- Qdrant failing: the call fails and the watermark stays where it was
INSERT INTO regress_docs VALUES (30, 'a document during an outage', 'even', '2026-01-03 00:00:00+00'),
								(31, 'another document during an outage', 'odd', '2026-01-03 00:00:01+00');
SELECT dc_test.fault('qdrant', '{"mode": "status", "status": 500, "path": "/collections/regress_rag_docs/points"}');
SELECT datacore.rag_sync('regress_docs');
SELECT last_id, rows_synced FROM datacore.rag_pipelines;
SELECT dc_test.fault('qdrant', NULL);
-- Ollama failing: same
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500}');
SELECT datacore.rag_sync('regress_docs');
SELECT last_id, rows_synced FROM datacore.rag_pipelines;
SELECT dc_test.fault('ollama', NULL);
-- a failure in the second batch rolls back the first batch's watermark
-- too, although that batch reached Qdrant; the next call sends it again
-- (an upsert by id replaces the point).  The second embed request gets a
-- 500, a failure that is not the rows' (a row the model refuses goes to
-- rag_errors instead: rag_chunks.sql).
INSERT INTO regress_docs
SELECT i, 'late document ' || i, 'even', '2026-01-04 00:00:00+00'::timestamptz + i * interval '1 second'
  FROM generate_series(40, 45) i;
SELECT dc_test.clear_log('qdrant');
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 500, "after": 1, "times": 1, "path": "/api/embed"}');
SELECT datacore.rag_sync('regress_docs');
SELECT jsonb_path_query_array(l->'body', '$.points[*].id') AS ids FROM dc_test.log('qdrant') l;
SELECT last_id, rows_synced FROM datacore.rag_pipelines;
SELECT dc_test.fault('ollama', NULL);
SELECT dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_docs');
SELECT jsonb_path_query_array(l->'body', '$.points[*].id') AS ids FROM dc_test.log('qdrant') l;
SELECT last_id, rows_synced FROM datacore.rag_pipelines;
SELECT datacore.qdrant_count('regress_rag_docs');

-- search: the nearest row first; filters pass through to Qdrant
SELECT id, round(score::numeric, 3) AS score, payload->>'text' AS text, payload->>'topic' AS topic
  FROM datacore.rag_search('regress_docs', 'qdrant stores vectors for similarity search', 3);
SELECT id, payload->>'text' AS text
  FROM datacore.rag_search('regress_docs', 'vectors', 2,
						   '{"must": [{"key": "topic", "match": {"value": "odd"}}]}');
SELECT count(*) FROM datacore.rag_search('regress_docs', NULL);
SELECT datacore.rag_search('regress_docs', '');

-- answers: the retrieved texts go into the prompt, the sources come back
SELECT dc_test.clear_log('ollama');
SELECT jsonb_typeof(a) AS type, a->>'model' AS model, a->'sources'->0->>'id' AS best,
	   jsonb_array_length(a->'sources') AS sources,
	   (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(a) k) AS keys,
	   (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(a->'sources'->0) k) AS source_keys
  FROM datacore.rag_answer('regress_docs', 'which program stores vectors for search?', 2) a;
SELECT l->>'path' AS path, l->'body'->>'model' AS model, l->'body'->>'system' AS system,
	   l->'body'->>'prompt' AS prompt
  FROM dc_test.log('ollama') l WHERE l->>'path' = '/api/generate';
SELECT datacore.rag_answer('regress_docs', 'which program stores vectors?', 1, 'nosuchmodel');
SELECT datacore.rag_answer('regress_docs', NULL);

-- uuid ids, an integer updated column, no payload columns, another model
CREATE TABLE regress_notes (id uuid PRIMARY KEY, note varchar(100), version bigint NOT NULL);
INSERT INTO regress_notes VALUES
	('00000000-0000-0000-0000-000000000002', 'second note', 1),
	('00000000-0000-0000-0000-000000000001', 'first note', 1),
	('00000000-0000-0000-0000-000000000003', 'third note', 2);
SELECT datacore.rag_create('regress_uuid', 'regress_notes', 'id', 'note', 'version', 'regress_rag_uuid',
						   model => 'all-minilm', batch_size => 2);
SELECT dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_uuid');
SELECT l->>'path' AS path, jsonb_path_query_array(l->'body', '$.points[*].id') AS ids,
	   l->'body'->'vectors' AS vectors
  FROM dc_test.log('qdrant') l;
SELECT dimension, last_updated, last_id FROM datacore.rag_pipelines WHERE name = 'regress_uuid';
SELECT id, payload FROM datacore.rag_search('regress_uuid', 'first note', 1);
-- a different embedding model later: refused before anything is sent
UPDATE datacore.rag_pipelines SET model = 'nomic-embed-text' WHERE name = 'regress_uuid';
UPDATE regress_notes SET version = 3 WHERE id = '00000000-0000-0000-0000-000000000001';
SELECT datacore.rag_sync('regress_uuid');
SELECT datacore.rag_reset('regress_uuid', drop_collection => true);
SELECT dimension, last_updated, last_id, rows_synced FROM datacore.rag_pipelines WHERE name = 'regress_uuid';
SELECT datacore.rag_sync('regress_uuid');
SELECT dimension FROM datacore.rag_pipelines WHERE name = 'regress_uuid';

-- scheduling: argument errors (test/t/rag_cron.sh schedules for real)
SELECT datacore.rag_schedule('regress_docs', '');
SELECT datacore.rag_schedule('regress_nosuch', '*/5 * * * *');

-- privileges: the caller's rights apply throughout
CREATE ROLE regress_rag_user;
CREATE ROLE regress_rag_other;
GRANT USAGE ON SCHEMA datacore TO regress_rag_user;
CREATE TABLE regress_mine (id int PRIMARY KEY, body text, updated date NOT NULL);
INSERT INTO regress_mine VALUES (1, 'my own note', '2026-01-01');
ALTER TABLE regress_mine OWNER TO regress_rag_user;
SET ROLE regress_rag_user;
SELECT count(*) AS visible FROM datacore.rag_pipelines;
SELECT datacore.rag_sync('regress_docs');
SELECT datacore.rag_search('regress_docs', 'cats');
SELECT datacore.rag_create('regress_theirs', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs');
SELECT datacore.rag_create('regress_mine', 'regress_mine', 'id', 'body', 'updated', 'regress_rag_mine');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER ollama TO regress_rag_user;
SET ROLE regress_rag_user;
SELECT datacore.rag_create('regress_mine', 'regress_mine', 'id', 'body', 'updated', 'regress_rag_mine');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER qdrant TO regress_rag_user;
SET ROLE regress_rag_user;
SELECT datacore.rag_create('regress_mine', 'regress_mine', 'id', 'body', 'updated', 'regress_rag_mine');
SELECT datacore.rag_sync('regress_mine');
SELECT name, owner, last_updated, last_id, rows_synced FROM datacore.rag_pipelines;
SELECT id, payload->>'text' AS text FROM datacore.rag_search('regress_mine', 'note', 1);
-- pg_cron works only in cron.database_name (postgres): here scheduling
-- says what to run there instead, with the caller as the job's user
SELECT datacore.rag_schedule('regress_mine', '*/5 * * * *');
SELECT datacore.rag_unschedule('regress_mine');
-- hand the pipeline to a role one is not a member of: refused
UPDATE datacore.rag_pipelines SET owner = 'regress_rag_other' WHERE name = 'regress_mine';
RESET ROLE;
-- losing USAGE on a server stops the pipeline, before anything is sent
REVOKE USAGE ON FOREIGN SERVER qdrant FROM regress_rag_user;
SET ROLE regress_rag_user;
SELECT datacore.rag_sync('regress_mine');
SELECT datacore.rag_drop('regress_docs');
SELECT datacore.rag_drop('regress_mine');
RESET ROLE;
SELECT name FROM datacore.rag_pipelines ORDER BY name;

-- ownership: a pipeline belongs to the role that created it, not to the
-- roles that are members of it.  Members may read the row and search; they
-- never change, sync, schedule, reset or drop it (a sync runs with the
-- caller's rights).  A superuser does so only explicitly: by acting as the
-- owner, or by writing the catalog.
CREATE ROLE regress_rag_team;
CREATE ROLE regress_rag_member IN ROLE regress_rag_team;
CREATE ROLE regress_rag_bypass BYPASSRLS;
GRANT USAGE ON SCHEMA datacore TO regress_rag_team, regress_rag_bypass;
GRANT USAGE ON FOREIGN SERVER ollama, qdrant TO regress_rag_team;
CREATE TABLE regress_team (id int PRIMARY KEY, body text, updated date NOT NULL);
INSERT INTO regress_team VALUES (1, 'the team note', '2026-01-01'), (2, 'another team note', '2026-01-02');
GRANT SELECT ON regress_team, regress_docs TO regress_rag_team;
SET ROLE regress_rag_team;
SELECT datacore.rag_create('regress_team', 'regress_team', 'id', 'body', 'updated', 'regress_rag_team');
SELECT datacore.rag_sync('regress_team');
SET ROLE regress_rag_member;
SELECT name, owner, source, collection, last_id FROM datacore.rag_pipelines;
SELECT id, payload->>'text' AS text FROM datacore.rag_search('regress_team', 'the team note', 1);
-- a member's writes to the catalog find no row, or are refused
WITH u AS (UPDATE datacore.rag_pipelines SET source = 'regress_docs', collection = 'regress_rag_docs',
								qdrant_server = 'qdrant' RETURNING 1)
SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE datacore.rag_pipelines SET last_updated = NULL, last_id = NULL RETURNING 1)
SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM datacore.rag_pipelines RETURNING 1) SELECT count(*) AS deleted FROM d;
INSERT INTO datacore.rag_pipelines (name, owner, source, id_column, text_column, updated_column, collection)
	VALUES ('regress_forged', 'regress_rag_team', 'regress_docs', 'id', 'body', 'updated', 'regress_rag_docs');
-- and the functions refuse, pointing at SET ROLE
SELECT datacore.rag_sync('regress_team');
SELECT datacore.rag_reset('regress_team');
SELECT datacore.rag_schedule('regress_team', '*/5 * * * *');
SELECT datacore.rag_drop('regress_team', drop_collection => true);
-- a pipeline of one's own cannot be handed to a role one belongs to
SELECT datacore.rag_create('regress_member_own', 'regress_team', 'id', 'body', 'updated', 'regress_rag_member_own');
UPDATE datacore.rag_pipelines SET owner = 'regress_rag_team' WHERE name = 'regress_member_own';
SELECT datacore.rag_drop('regress_member_own');
SELECT name, source, collection, qdrant_server, last_id FROM datacore.rag_pipelines;
-- a superuser: refused too, unless it acts as the owner
RESET ROLE;
SELECT datacore.rag_sync('regress_team');
SELECT datacore.rag_schedule('regress_team', '*/5 * * * *');
SELECT datacore.rag_drop('regress_team');
SET ROLE regress_rag_team;
SELECT datacore.rag_reset('regress_team');
SELECT datacore.rag_sync('regress_team');
-- the owner may change its own row, watermark included
UPDATE datacore.rag_pipelines SET batch_size = 1, last_id = NULL, last_updated = NULL WHERE name = 'regress_team';
SELECT datacore.rag_sync('regress_team');
-- a role that bypasses row-level security sees the row but cannot write it
SET ROLE regress_rag_bypass;
SELECT name, owner FROM datacore.rag_pipelines WHERE name LIKE 'regress_team%';
UPDATE datacore.rag_pipelines SET collection = 'regress_rag_docs' WHERE name = 'regress_team';
DELETE FROM datacore.rag_pipelines WHERE name = 'regress_team';
SELECT datacore.rag_sync('regress_team');
-- a superuser may give a pipeline to another role, which then owns it alone
RESET ROLE;
UPDATE datacore.rag_pipelines SET owner = 'regress_rag_member' WHERE name = 'regress_team';
SET ROLE regress_rag_team;
SELECT datacore.rag_sync('regress_team');
SET ROLE regress_rag_member;
SELECT datacore.rag_drop('regress_team', drop_collection => true);
RESET ROLE;
-- the owner is the creating role exactly, whatever its name's case: not a
-- role whose name only differs in case
CREATE ROLE "regress_rag_Mixed" IN ROLE regress_rag_team;
CREATE ROLE regress_rag_mixed;
GRANT USAGE ON SCHEMA datacore TO regress_rag_mixed;
SET ROLE "regress_rag_Mixed";
SELECT datacore.rag_create('regress_mixed', 'regress_team', 'id', 'body', 'updated', 'regress_rag_mixed');
SELECT name, owner FROM datacore.rag_pipelines;
SET ROLE regress_rag_mixed;
SELECT count(*) AS visible FROM datacore.rag_pipelines;
SELECT datacore.rag_drop('regress_mixed');
SET ROLE "regress_rag_Mixed";
SELECT datacore.rag_drop('regress_mixed');
RESET ROLE;
-- a pipeline whose owner was dropped: invisible to other roles, refused to
-- a superuser (the hint says what to do), until one gives it a new owner
CREATE ROLE regress_rag_gone IN ROLE regress_rag_team;
SET ROLE regress_rag_gone;
SELECT datacore.rag_create('regress_gone', 'regress_team', 'id', 'body', 'updated', 'regress_rag_gone');
RESET ROLE;
DROP ROLE regress_rag_gone;
SET ROLE regress_rag_member;
SELECT count(*) AS visible FROM datacore.rag_pipelines;
RESET ROLE;
DO $$
DECLARE
	msg text;
	hint text;
BEGIN
	PERFORM datacore.rag_sync('regress_gone');
EXCEPTION WHEN insufficient_privilege THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RAISE WARNING '% (hint: %)', msg, hint;
END $$;
UPDATE datacore.rag_pipelines SET owner = 'regress_rag_member' WHERE name = 'regress_gone';
SET ROLE regress_rag_member;
SELECT datacore.rag_drop('regress_gone');
RESET ROLE;
SELECT name FROM datacore.rag_pipelines ORDER BY name;
DROP TABLE regress_team;
DROP OWNED BY regress_rag_team, regress_rag_member, regress_rag_bypass, "regress_rag_Mixed", regress_rag_mixed;
DROP ROLE regress_rag_member, "regress_rag_Mixed", regress_rag_team, regress_rag_bypass, regress_rag_mixed;

-- a dropped source
DROP TABLE regress_notes;
SELECT datacore.rag_sync('regress_uuid');

-- clean up
SELECT datacore.rag_drop('regress_docs', drop_collection => true);
SELECT datacore.rag_drop('regress_uuid', drop_collection => true);
SELECT datacore.rag_drop('regress_docs');
SELECT datacore.qdrant_drop_collection('regress_rag_mine');
SELECT c FROM datacore.qdrant_collections() c WHERE c LIKE 'regress_rag%';
SELECT count(*) AS pipelines FROM datacore.rag_pipelines;
DROP TABLE regress_docs, regress_mine;
REVOKE USAGE ON FOREIGN SERVER ollama FROM regress_rag_user;
REVOKE USAGE ON SCHEMA datacore FROM regress_rag_user;
DROP ROLE regress_rag_user, regress_rag_other;
\i test/regress/teardown.psql
