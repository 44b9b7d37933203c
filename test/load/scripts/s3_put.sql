\set k random(1, 2000)
SELECT datacore.s3_put('load', 'put/' || :k, repeat('x', 1024), 'text/plain');
