-- The servers of the AeroVista demo, pointing at the local stack.  run-demo
-- passes the endpoints and credentials as psql variables; on a real cluster
-- they are the AI node, MinIO, Qdrant and Redis of the data node:
--   psql -v ollama_url=http://ainode:11434 -v qdrant_url=http://127.0.0.1:6333 \
--        -v s3_url=http://127.0.0.1:9000 -v s3_access_key=... -v s3_secret_key=... \
--        -v redis_host=127.0.0.1 -v redis_port=6379 -v redis_password=... \
--        [-v ollama_token=...] [-v qdrant_api_key=...] -f aerovista-servers.sql
-- Redis: redis_password alone for a server with only "requirepass" (AUTH as
-- the default user); add -v redis_user=NAME for a Redis 6+ ACL user; leave
-- both out for a Redis without authentication.
CREATE EXTENSION IF NOT EXISTS datacore;

-- A model call may take a minute; after three failures in a row the chain
-- stops waiting for the AI node for 30 s and serves its last good answer.
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url :'ollama_url', model 'llama3.2', embedding_model 'nomic-embed-text',
			 timeout_ms '60000', breaker_threshold '3', breaker_cooldown_ms '30000');
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url :'qdrant_url');
CREATE SERVER minio FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url :'s3_url', region 'us-east-1');
\if :{?redis_host}
\else
\set redis_host 127.0.0.1
\endif
CREATE SERVER redis FOREIGN DATA WRAPPER datacore_redis
	OPTIONS (host :'redis_host', port :'redis_port');

-- Credentials live only in user mappings, whose options only the servers'
-- owner can read.  The mappings are PUBLIC's, but a role uses one only with
-- USAGE on the server: aerovista.sql grants that to aerovista_owner (the
-- owner of the RPCs) alone, never to web_anon.
CREATE USER MAPPING FOR PUBLIC SERVER minio
	OPTIONS (access_key_id :'s3_access_key', secret_access_key :'s3_secret_key');
\if :{?redis_user}
CREATE USER MAPPING FOR PUBLIC SERVER redis
	OPTIONS (user :'redis_user', password :'redis_password');
\elif :{?redis_password}
CREATE USER MAPPING FOR PUBLIC SERVER redis OPTIONS (password :'redis_password');
\endif
-- A real Ollama behind a proxy that wants a token, a Qdrant with an API key.
\if :{?ollama_token}
CREATE USER MAPPING FOR PUBLIC SERVER ollama OPTIONS (bearer_token :'ollama_token');
\endif
\if :{?qdrant_api_key}
CREATE USER MAPPING FOR PUBLIC SERVER qdrant OPTIONS (api_key :'qdrant_api_key');
\endif
