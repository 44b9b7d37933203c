-- Top 5 of the 1,000 points of dimension 8 loaded before the run.
SELECT count(*) FROM datacore.qdrant_search('load', load.random_vector(), 5);
