-- One of the 200 objects of 1 KiB put before the run.
\set k random(1, 200)
SELECT length(datacore.s3_get('load', 'small/' || :k));
