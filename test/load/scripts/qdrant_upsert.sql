\set id random(1, 1000)
SELECT datacore.qdrant_upsert('load', :id::bigint, load.random_vector(), jsonb_build_object('n', :id));
