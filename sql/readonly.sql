-- Calls with a side effect outside the database refuse a READ ONLY
-- transaction with 25006, as PostgreSQL's own writes do, so a read-only
-- caller (a PostgREST GET, a hot standby) never changes remote state; reads
-- still reach the servers.
\i test/regress/setup.psql
\set SHOW_CONTEXT never

-- the SQLSTATE a statement ends with ('ok' when none)
CREATE FUNCTION pg_temp.outcome(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
CREATE FOREIGN TABLE regress_ro_keys (key text, value text)
	SERVER redis OPTIONS (key_prefix 'regress:ro:');
SELECT datacore.redis_set('regress:ro:k', 'v');
SELECT dc_test.clear_log('s3');
SELECT dc_test.clear_log('qdrant');

SET default_transaction_read_only = on;
SELECT stmt, pg_temp.outcome(stmt) FROM unnest(ARRAY[
	-- writes: refused before anything is sent
	$$SELECT datacore.s3_put('regress-ro', 'k', 'v'::text)$$,
	$$SELECT datacore.s3_delete('regress-ro', 'k')$$,
	$$SELECT datacore.s3_create_bucket('regress-ro')$$,
	$$SELECT datacore.s3_delete_bucket('regress-ro')$$,
	$$SELECT datacore.redis_set('regress:ro:k', 'w')$$,
	$$SELECT datacore.redis_del('regress:ro:k')$$,
	$$SELECT datacore.redis_incr('regress:ro:n')$$,
	$$SELECT datacore.redis_expire('regress:ro:k', '1 minute')$$,
	$$SELECT datacore.redis_lpush('regress:ro:l', 'x')$$,
	$$SELECT datacore.redis_rpop('regress:ro:l')$$,
	$$SELECT datacore.redis_hset('regress:ro:h', 'f', 'v')$$,
	$$SELECT datacore.redis_publish('regress:ro:chan', 'hello')$$,
	$$SELECT datacore.redis_command('{SET,regress:ro:k,w}')$$,
	$$SELECT datacore.redis_transaction('{{GET,regress:ro:k,NULL},{SET,regress:ro:k,w}}')$$,
	$$SELECT datacore.qdrant_create_collection('regress_ro', 3)$$,
	$$SELECT datacore.qdrant_drop_collection('regress_ro')$$,
	$$SELECT datacore.qdrant_upsert('regress_ro', 1, '{1,2,3}')$$,
	$$SELECT datacore.qdrant_upsert('regress_ro', '[]'::jsonb)$$,
	$$SELECT datacore.qdrant_delete('regress_ro', ARRAY['1'])$$,
	$$INSERT INTO regress_ro_keys VALUES ('x', 'y')$$,
	$$SELECT datacore.s3_put_async('regress-ro', 'k', 'v'::text)$$,
	-- reads: answered as usual
	$$SELECT datacore.redis_get('regress:ro:k')$$,
	$$SELECT datacore.redis_command('{GET,regress:ro:k}')$$,
	$$SELECT count(*) FROM regress_ro_keys$$,
	$$SELECT datacore.ollama_generate('read only')$$,
	$$SELECT count(*) FROM datacore.qdrant_collections()$$,
	$$SELECT count(*) FROM datacore.s3_list('regress-ro-missing')$$
]) stmt;
RESET default_transaction_read_only;

-- nothing reached the S3 or Qdrant stand-in, and the value is unchanged
SELECT count(*) AS s3_writes FROM dc_test.log('s3') l WHERE l->>'method' IN ('PUT', 'DELETE', 'POST');
SELECT count(*) AS qdrant_writes FROM dc_test.log('qdrant') l WHERE l->>'method' IN ('PUT', 'DELETE');
SELECT datacore.redis_get('regress:ro:k') AS value;

SELECT datacore.redis_del('regress:ro:k');
DROP FOREIGN TABLE regress_ro_keys;
\i test/regress/teardown.psql
