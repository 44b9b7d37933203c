-- RAG pipelines of documents in S3: the text, Markdown and JSON Lines
-- objects under a bucket and prefix are chunked and embedded; a changed
-- object (new ETag) is sent again, a deleted one loses its points.
\i test/regress/setup.psql
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT datacore.qdrant_drop_collection('regress_rag_s3', if_exists => true);
SELECT dc_test.s3_drop_bucket('regress-rag-docs');
SELECT datacore.s3_create_bucket('regress-rag-docs');
-- 50 documents under docs/, plus objects that are not documents or not
-- under the prefix
SELECT count(datacore.s3_put('regress-rag-docs', format('docs/note-%s.md', lpad(i::text, 2, '0')),
							 format(E'# Note %s\n\nThis is note number %s.\n\nIt talks about topic %s.', i, i, i % 5)))
  FROM generate_series(1, 48) i;
SELECT datacore.s3_put('regress-rag-docs', 'docs/plain.txt', 'a plain text document');
SELECT datacore.s3_put('regress-rag-docs', 'docs/records.jsonl',
					   E'{"text": "first record"}\n\n{"title": "no text member"}\n{"text": "third record"}\n');
SELECT datacore.s3_put('regress-rag-docs', 'docs/image.png', '\x89504e47'::bytea);
SELECT datacore.s3_put('regress-rag-docs', 'other/outside.md', 'not under the prefix');

SELECT datacore.rag_create_s3('regress_s3', 'regress-rag-docs', 'docs/', 'regress_rag_s3', chunker => 'none');
SELECT datacore.rag_create_s3('regress_s3', 'regress-rag-docs', 'docs/', 'regress_rag_s3', template => '$title $chunk');
SELECT datacore.rag_create_s3('regress_s3', 'regress-rag-docs', 'docs/', 'regress_rag_s3', s3_server => 'qdrant');
SELECT datacore.rag_create_s3('regress_s3', 'regress-rag-docs', 'docs/', 'regress_rag_s3',
							  chunk_size => 40, template => '$key: $chunk', batch_size => 16);
SELECT name, source, capture, chunker, s3_bucket, s3_prefix, s3_server FROM datacore.rag_pipelines;
SELECT pipeline, pending, done FROM datacore.rag_status;
SELECT dc_test.clear_log('ollama');
SELECT datacore.rag_sync('regress_s3');
SELECT count(*) AS embed_requests FROM dc_test.log('ollama') l WHERE l->>'path' = '/api/embed';
SELECT datacore.qdrant_count('regress_rag_s3');
SELECT pipeline, pending, done FROM datacore.rag_status;
SELECT row_id, chunks FROM datacore.rag_rows WHERE row_id IN ('docs/note-01.md', 'docs/plain.txt', 'docs/records.jsonl') ORDER BY row_id;
-- the payload: bucket, key, chunk and text; the template put the key first
SELECT id::uuid = datacore.rag_point_id('regress_s3', payload->>'key', (payload->>'chunk')::int) AS id_ok,
	   payload - 'id' AS payload
  FROM datacore.rag_search('regress_s3', 'first record', 1);
-- nothing changed: one listing, no request
SELECT dc_test.clear_log('ollama');
SELECT datacore.rag_sync('regress_s3');
SELECT count(*) AS ollama_requests FROM dc_test.log('ollama');

-- one object changed (shorter: one chunk), one deleted
SELECT datacore.s3_put('regress-rag-docs', 'docs/note-07.md', 'Note seven, rewritten.');
SELECT datacore.s3_delete('regress-rag-docs', 'docs/note-08.md');
SELECT pipeline, pending FROM datacore.rag_status;
SELECT dc_test.clear_log('ollama');
SELECT datacore.rag_sync('regress_s3');
SELECT l->'body'->'input' AS input FROM dc_test.log('ollama') l WHERE l->>'path' = '/api/embed';
SELECT row_id, chunks FROM datacore.rag_rows WHERE row_id IN ('docs/note-07.md', 'docs/note-08.md') ORDER BY row_id;
SELECT datacore.qdrant_count('regress_rag_s3');
SELECT datacore.qdrant_count('regress_rag_s3', '{"must": [{"key": "key", "match": {"value": "docs/note-08.md"}}]}') AS deleted_left;
-- rag_enqueue_existing sends every document again
SELECT datacore.rag_enqueue_existing('regress_s3');
SELECT datacore.rag_sync('regress_s3');
SELECT datacore.qdrant_count('regress_rag_s3');

SELECT datacore.rag_drop('regress_s3', drop_collection => true);
SELECT dc_test.s3_drop_bucket('regress-rag-docs');
