-- The chain RPC on its cached path: the 24-hour summary, primed before the run.
SELECT load.chain(24, 'chain_cached');
