\set k random(1, 10000)
SELECT datacore.redis_get('load:' || :k);
