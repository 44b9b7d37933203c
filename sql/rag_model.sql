-- RAG pipelines: a change of embedding model rebuilds the collection during
-- normal syncs while searches keep using the old one, then switches.
\i test/regress/setup.psql
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT datacore.qdrant_drop_collection(c, if_exists => true)
  FROM unnest(ARRAY['regress_rag_model', 'regress_rag_model__all-minilm', 'regress_rag_model_v2']) c;

CREATE TABLE regress_facts (id int PRIMARY KEY, body text, updated int NOT NULL);
INSERT INTO regress_facts VALUES (1, 'cats purr', 1), (2, 'dogs bark', 2), (3, 'cows moo', 3),
								 (4, 'owls hoot', 4), (5, 'frogs croak', 5);
SELECT datacore.rag_create('regress_model', 'regress_facts', 'id', 'body', 'updated', 'regress_rag_model',
						   batch_size => 2);
SELECT datacore.rag_sync('regress_model');
SELECT model, collection, dimension FROM datacore.rag_pipelines;

SELECT datacore.rag_change_model('regress_model', '');
SELECT datacore.rag_change_model('regress_model', 'all-minilm', 'regress_rag_model');
SELECT datacore.rag_change_model('regress_model', 'all-minilm');
SELECT name ~ '^next~' AS rebuild, parent, model, collection, dimension FROM datacore.rag_pipelines ORDER BY name;
SELECT datacore.rag_change_model((SELECT name FROM datacore.rag_pipelines WHERE parent IS NOT NULL), 'x');

-- one batch of the rebuild per sync: searches still use the old collection
-- (16-dimensional vectors of nomic-embed-text)
SELECT datacore.rag_sync('regress_model', max_batches => 1);
SELECT dc_test.clear_log('qdrant');
SELECT id FROM datacore.rag_search('regress_model', 'purring cats', 1);
SELECT l->>'path' AS path, jsonb_array_length(coalesce(l->'body'->'vector', l->'body'->'query')) AS dimension
  FROM dc_test.log('qdrant') l;
-- a row written during the rebuild reaches both collections
INSERT INTO regress_facts VALUES (6, 'bees buzz', 6);
SELECT datacore.rag_sync('regress_model', max_batches => 1);
SELECT datacore.qdrant_count('regress_rag_model') AS old_points,
	   datacore.qdrant_count('regress_rag_model__all-minilm') AS new_points;
SELECT count(*) AS pipelines FROM datacore.rag_pipelines;
-- the last batch: the rebuild has caught up, the pipeline switches
SELECT datacore.rag_sync('regress_model', max_batches => 1);
SELECT name, model, collection, dimension, retired_collection FROM datacore.rag_pipelines;
SELECT dc_test.clear_log('qdrant');
SELECT id FROM datacore.rag_search('regress_model', 'purring cats', 1);
SELECT l->>'path' AS path, jsonb_array_length(coalesce(l->'body'->'vector', l->'body'->'query')) AS dimension
  FROM dc_test.log('qdrant') l;
SELECT row_id FROM datacore.rag_rows ORDER BY row_id;
-- the next sync drops the old collection
SELECT datacore.rag_sync('regress_model');
SELECT c FROM datacore.qdrant_collections() c WHERE c LIKE 'regress_rag_model%' ORDER BY c;
SELECT retired_collection FROM datacore.rag_pipelines;

-- rag_drop takes a rebuild under way with it
SELECT datacore.rag_change_model('regress_model', 'nomic-embed-text', 'regress_rag_model_v2');
SELECT datacore.rag_sync('regress_model', max_batches => 1);
SELECT datacore.rag_drop('regress_model', drop_collection => true);
SELECT count(*) AS pipelines FROM datacore.rag_pipelines;
SELECT c FROM datacore.qdrant_collections() c WHERE c LIKE 'regress_rag_model%' ORDER BY c;
DROP TABLE regress_facts;
