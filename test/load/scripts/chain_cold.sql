-- The chain RPC on its cold path: one of 23 cache keys (hours 1 to 23; 24
-- is chain_cached's), its cached answer dropped first, so the whole chain
-- runs (rows, model, S3, Redis).
\set h random(1, 23)
SELECT load.chain(:h, 'chain_cold', cold => true);
