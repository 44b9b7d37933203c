\set k random(1, 10000)
SELECT datacore.redis_set('load:' || :k, 'value ' || :k, '10 minutes');
