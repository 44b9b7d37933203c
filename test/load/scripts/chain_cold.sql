-- The chain RPC over 24 cache keys whose entries live one second: most calls
-- find their key expired and run the whole chain (rows, model, S3, Redis).
\set h random(1, 24)
SELECT load.chain(:h, 'chain_cold');
