-- RAG pipelines, chunked: rag_chunks boundaries and overlap, templates,
-- chunk point ids, surplus points, request budgets, rows the model refuses
-- (rag_errors) and rag_status.
\i test/regress/setup.psql
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT datacore.qdrant_drop_collection(c, if_exists => true)
  FROM unnest(ARRAY['regress_rag_chunks', 'regress_rag_budget']) c;

-- character windows: size 4, each starting 3 after the one before
SELECT n, chunk FROM datacore.rag_chunks('abcdefghij', 'character', 4, 1);
SELECT n, chunk FROM datacore.rag_chunks('abcdefgh', 'character', 4);
-- sizes are in characters: each of these is two bytes in UTF-8
SELECT n, chunk, octet_length(chunk) AS bytes FROM datacore.rag_chunks('äöüßéèàç', 'character', 3, 1);
-- recursive: paragraphs first, then lines, sentences, words, characters;
-- overlap repeats whole pieces of the previous chunk
SELECT n, chunk FROM datacore.rag_chunks(E'First paragraph here.\n\nSecond one, a bit longer than that.\n\nThird.',
										  'recursive', 40);
SELECT n, chunk FROM datacore.rag_chunks('one two three four five six seven eight nine ten', 'recursive', 14, 6);
SELECT n, chunk FROM datacore.rag_chunks('Short. Sentences here! Are they kept? Yes they are.', 'recursive', 25);
SELECT n, chunk FROM datacore.rag_chunks('abcdefghijklmnopqrstuvwxyz', 'recursive', 10);
SELECT n, chunk FROM datacore.rag_chunks('ünïcödé wörds än müch mörë', 'recursive', 12, 6);
SELECT n, length(chunk) FROM datacore.rag_chunks(repeat('word ', 1000), 'recursive', 500);
-- none: the document as it is; blank documents have no chunks
SELECT n, chunk FROM datacore.rag_chunks('  kept as it is  ', 'none', NULL);
SELECT count(*) FROM datacore.rag_chunks(E' \n\t ', 'recursive', 10);
SELECT count(*) FROM datacore.rag_chunks(NULL, 'character', 10);
SELECT * FROM datacore.rag_chunks('x', 'sentences', 10);
SELECT * FROM datacore.rag_chunks('x', 'character', 0);
SELECT * FROM datacore.rag_chunks('x', 'character', 10, 10);
SELECT * FROM datacore.rag_chunks('x', NULL, 10);

-- templates: $chunk and $column; $$ is a dollar; values are not rescanned
SELECT datacore.rag_format('$title: $chunk', 'the text', '{"title": "Cats"}');
SELECT datacore.rag_format('${title}s cost $$5 ($missing) $chunk', '$title', '{"title": "Cat", "n": 3}');
SELECT datacore.rag_format('$n/$flag/$obj', 'x', '{"n": 3, "flag": true, "obj": {"a": [1]}}');
SELECT datacore.rag_template_columns('$title: ${chunk} $$notacolumn $lang $title');
-- point ids: UUID version 5, the same for the same pipeline, row and chunk
SELECT datacore.rag_point_id('p', '1', 1) AS id, datacore.rag_point_id('p', '1', 1) = datacore.rag_point_id('p', '1', 1) AS same,
	   datacore.rag_point_id('p', '1', 2) <> datacore.rag_point_id('p', '1', 1) AS other_chunk,
	   datacore.rag_point_id('p', '11', 1) <> datacore.rag_point_id('p1', '1', 1) AS no_ambiguity,
	   substr(datacore.rag_point_id('x', 'y', 3)::text, 15, 1) AS version;

CREATE TABLE regress_chunked (
	id bigint PRIMARY KEY,
	title text,
	body text,
	lang text,
	updated timestamptz NOT NULL
);
INSERT INTO regress_chunked VALUES
	(1, 'Cats', E'Cats sleep a lot.\n\nThey also purr when content.\n\nSome cats like water.', 'en', '2026-01-01'),
	(2, 'Dogs', 'Dogs bark.', 'en', '2026-01-02');

-- validation of the new parameters
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   chunker => 'paragraphs', chunk_size => 40);
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   chunker => 'recursive');
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   chunk_size => 40);
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   chunker => 'recursive', chunk_size => 40, template => '$title');
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   chunker => 'recursive', chunk_size => 40, template => '$heading: $chunk');
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   max_batch_chars => 0);
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', NULL, 'regress_rag_chunks');
SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   capture => 'polling');

SELECT datacore.rag_create('regress_chunks', 'regress_chunked', 'id', 'body', 'updated', 'regress_rag_chunks',
						   payload_columns => '{lang}', batch_size => 3,
						   chunker => 'recursive', chunk_size => 40, template => '$title: $chunk');
SELECT pipeline, pending, done, errors FROM datacore.rag_status;
SELECT dc_test.clear_log('ollama');
SELECT dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_chunks');
-- what was embedded: the template over each chunk, three texts per request
SELECT l->'body'->'input' AS input FROM dc_test.log('ollama') l;
-- what Qdrant holds: one point per chunk, id from rag_point_id
SELECT p->'payload' AS payload,
	   p->>'id' = datacore.rag_point_id('regress_chunks', p->'payload'->>'id', (p->'payload'->>'chunk')::int)::text AS id_ok
  FROM dc_test.log('qdrant') l, jsonb_array_elements(l->'body'->'points') p
 ORDER BY p->'payload'->>'id', (p->'payload'->>'chunk')::int;
SELECT datacore.qdrant_count('regress_rag_chunks');
SELECT pipeline, row_id, chunks FROM datacore.rag_rows ORDER BY row_id;
SELECT pipeline, pending, done, errors, last_sync_rows FROM datacore.rag_status;

-- rag_answer: the nearest chunks, numbered into the prompt while they fit
-- in max_context_chars; sources name the row and chunk of each passage
SELECT dc_test.clear_log('ollama');
SELECT jsonb_path_query_array(a->'sources', '$[*].row_id') AS row_ids,
	   jsonb_path_query_array(a->'sources', '$[*].chunk') AS chunks,
	   a->'prompt_chars' AS prompt_chars, a->'eval_count' AS eval_count,
	   (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(a) k) AS keys
  FROM datacore.rag_answer('regress_chunks', 'do cats like water?', 3, max_context_chars => 60) a;
SELECT l->'body'->>'prompt' AS prompt FROM dc_test.log('ollama') l WHERE l->>'path' = '/api/generate';
-- with a payload filter: only first chunks
SELECT jsonb_path_query_array(a->'sources', '$[*].chunk') AS chunks
  FROM datacore.rag_answer('regress_chunks', 'do cats like water?',
						   filter => '{"must": [{"key": "chunk", "match": {"value": 1}}]}') a;
SELECT datacore.rag_answer('regress_chunks', 'x', max_context_chars => 0);

-- row 1 shrinks to one chunk: its two surplus points are deleted in the
-- same sync, by id
UPDATE regress_chunked SET body = 'Cats sleep.', updated = '2026-01-03' WHERE id = 1;
SELECT dc_test.clear_log('qdrant');
SELECT datacore.rag_sync('regress_chunks');
SELECT l->>'path' AS path,
	   (SELECT array_agg(x ORDER BY x) FROM jsonb_array_elements_text(l->'body'->'points') x)
		 = (SELECT array_agg(i ORDER BY i) FROM (SELECT datacore.rag_point_id('regress_chunks', '1', n)::text FROM generate_series(2, 3) n) u(i))
		 AS surplus
  FROM dc_test.log('qdrant') l WHERE l->>'path' LIKE '%/delete';
SELECT datacore.qdrant_count('regress_rag_chunks');
SELECT row_id, chunks FROM datacore.rag_rows ORDER BY row_id;
-- a blank text deletes all of the row's points
UPDATE regress_chunked SET body = '', updated = '2026-01-04' WHERE id = 2;
SELECT datacore.rag_sync('regress_chunks');
SELECT datacore.qdrant_count('regress_rag_chunks');
SELECT row_id, chunks FROM datacore.rag_rows ORDER BY row_id;

-- search returns chunks; rag_answer builds its context from them
SELECT id::uuid = datacore.rag_point_id('regress_chunks', '1', 1) AS chunk_point, payload->>'text' AS text
  FROM datacore.rag_search('regress_chunks', 'sleeping cats', 1);

-- budgets: a request closes at batch_size texts or before max_batch_chars
-- characters, whichever comes first; a text longer than the budget goes alone
CREATE TABLE regress_budget (id int PRIMARY KEY, body text, updated int NOT NULL);
INSERT INTO regress_budget SELECT i, repeat(chr(96 + i), 10 * i), i FROM generate_series(1, 8) i;
SELECT datacore.rag_create('regress_budget', 'regress_budget', 'id', 'body', 'updated', 'regress_rag_budget',
						   batch_size => 4, max_batch_chars => 60);
SELECT dc_test.clear_log('ollama');
SELECT datacore.rag_sync('regress_budget');
SELECT (SELECT array_agg(length(x)) FROM jsonb_array_elements_text(l->'body'->'input') x) AS text_lengths
  FROM dc_test.log('ollama') l;
SELECT datacore.qdrant_count('regress_rag_budget');

-- a row the model refuses goes to rag_errors, the others are sent.  The text
-- __nan__ makes the stand-in answer with an invalid vector: the request of
-- four fails, its texts are embedded one by one, and only row 12 fails
INSERT INTO regress_budget VALUES (10, 'ten', 10), (11, 'eleven', 11), (12, '__nan__', 12), (13, 'thirteen', 13);
SELECT dc_test.clear_log('ollama');
SELECT datacore.rag_sync('regress_budget');
SELECT CASE jsonb_typeof(l->'body'->'input') WHEN 'array' THEN jsonb_array_length(l->'body'->'input') ELSE 1 END AS texts,
	   l->'body'->'input' AS input
  FROM dc_test.log('ollama') l;
SELECT pipeline, row_id, sqlstate, error, attempts FROM datacore.rag_errors;
SELECT datacore.qdrant_count('regress_rag_budget');
SELECT pipeline, pending, done, errors, last_error FROM datacore.rag_status WHERE pipeline = 'regress_budget';
-- an HTTP 400 for one input: the request fails, then that input alone
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 400, "times": 2, "path": "/api/embed", "body": {"error": "input rejected"}}');
INSERT INTO regress_budget VALUES (14, 'fourteen', 14), (15, 'fifteen', 15);
SELECT datacore.rag_sync('regress_budget');
SELECT dc_test.fault('ollama', NULL);
SELECT row_id, sqlstate, error, attempts FROM datacore.rag_errors ORDER BY row_id;
-- retried: 12 still fails (attempts 2), 14 now goes through
SELECT datacore.rag_retry_errors('regress_budget');
SELECT datacore.rag_sync('regress_budget');
SELECT row_id, sqlstate, attempts FROM datacore.rag_errors ORDER BY row_id;
UPDATE regress_budget SET body = 'twelve' WHERE id = 12;
SELECT datacore.rag_retry_errors('regress_budget');
SELECT datacore.rag_sync('regress_budget');
SELECT count(*) AS errors FROM datacore.rag_errors;
SELECT datacore.qdrant_count('regress_rag_budget');
-- when every text of a request fails alone too, the rows are not at fault:
-- the error is raised and nothing moves
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 400, "path": "/api/embed"}');
INSERT INTO regress_budget VALUES (16, 'sixteen', 16), (17, 'seventeen', 17);
SELECT datacore.rag_sync('regress_budget');
SELECT dc_test.fault('ollama', NULL);
SELECT count(*) AS errors FROM datacore.rag_errors;
SELECT pipeline, pending FROM datacore.rag_status WHERE pipeline = 'regress_budget';
-- a 503 (transient) stops the batch and keeps its rows pending
SELECT dc_test.fault('ollama', '{"mode": "status", "status": 503, "path": "/api/embed"}');
SELECT datacore.rag_sync('regress_budget');
SELECT dc_test.fault('ollama', NULL);
SELECT pipeline, pending FROM datacore.rag_status WHERE pipeline = 'regress_budget';
SELECT datacore.rag_sync('regress_budget');

-- rag_status counts exactly, without a cap
INSERT INTO regress_budget SELECT i, 'row ' || i, i FROM generate_series(100, 25099) i;
SELECT pipeline, pending, done, errors FROM datacore.rag_status ORDER BY pipeline;

-- the state tables follow the pipeline's owner: another role sees and
-- changes nothing, a member of the owner sees but cannot write
CREATE ROLE regress_rag_other;
GRANT USAGE ON SCHEMA datacore TO regress_rag_other;
SET ROLE regress_rag_other;
SELECT count(*) FROM datacore.rag_rows;
SELECT count(*) FROM datacore.rag_status;
INSERT INTO datacore.rag_queue (pipeline, row_id) VALUES ('regress_budget', '1');
DELETE FROM datacore.rag_rows;
SELECT datacore.rag_retry_errors('regress_budget');
SELECT datacore.rag_send(p, '{}', '{}', '{}', '{}', '{1}') FROM datacore.rag_pipelines p;
RESET ROLE;
CREATE ROLE regress_rag_bypass BYPASSRLS;
GRANT USAGE ON SCHEMA datacore TO regress_rag_bypass;
SET ROLE regress_rag_bypass;
SELECT count(*) > 0 AS sees_all FROM datacore.rag_rows;
DELETE FROM datacore.rag_rows WHERE pipeline = 'regress_budget';
INSERT INTO datacore.rag_errors (pipeline, row_id, error, sqlstate) VALUES ('regress_budget', '1', 'x', '22000');
RESET ROLE;
REVOKE USAGE ON SCHEMA datacore FROM regress_rag_other, regress_rag_bypass;
DROP ROLE regress_rag_other, regress_rag_bypass;
SELECT has_function_privilege('public', 'datacore.rag_state_guard()', 'EXECUTE') AS guard_public;

SELECT datacore.rag_drop(name, drop_collection => true) FROM datacore.rag_pipelines ORDER BY name;
SELECT (SELECT count(*) FROM datacore.rag_rows) + (SELECT count(*) FROM datacore.rag_queue)
	   + (SELECT count(*) FROM datacore.rag_errors) AS state_left;
DROP TABLE regress_chunked, regress_budget;
