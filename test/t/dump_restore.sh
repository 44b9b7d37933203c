#!/bin/bash
# pg_dump carries the whole datacore configuration — servers, user mappings
# (with their secrets, for a superuser's dump), foreign tables — and a restore
# into a fresh database works without any manual step.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres PGOPTIONS="-c client_min_messages=warning"
src=regress_dump_src dst=regress_dump_dst
trap 'psql -X -q -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" >/dev/null 2>&1 || true' EXIT

psql -X -q -c "DROP DATABASE IF EXISTS $src" -c "DROP DATABASE IF EXISTS $dst" \
    -c "CREATE DATABASE $src" -c "CREATE DATABASE $dst"
psql -X -q -v ON_ERROR_STOP=1 -d $src <<SQL
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', model 'llama3.2', timeout_ms '5000');
ALTER SERVER ollama OPTIONS (ADD retries '1');
CREATE USER MAPPING FOR PUBLIC SERVER ollama OPTIONS (bearer_token 'tok-dump');
CREATE SERVER redis FOREIGN DATA WRAPPER datacore_redis OPTIONS (host '127.0.0.1', port '$DC_REDIS_PORT');
CREATE FOREIGN TABLE cache_entries (key text, value text) SERVER redis
    OPTIONS (table_type 'string', key_prefix 'dump:');
SQL

pg_dump -d $src | psql -X -q -v ON_ERROR_STOP=1 -d $dst >/dev/null

got=$(psql -X -At -d $dst <<'SQL'
SELECT srvname || ' ' || (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(srvoptions) o)
    FROM pg_foreign_server ORDER BY 1;
SELECT array_to_string(umoptions, ',') FROM pg_user_mappings ORDER BY 1;
SELECT (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(ftoptions) o) FROM pg_foreign_table;
SELECT datacore.ollama_version();
SQL
)
want="ollama model=llama3.2,retries=1,timeout_ms=5000,url=http://127.0.0.1:$DC_OLLAMA_PORT
redis host=127.0.0.1,port=$DC_REDIS_PORT
bearer_token=tok-dump
key_prefix=dump:,table_type=string"
if [[ "$(head -n 4 <<<"$got")" != "$want" ]]; then
    echo "FAIL: restored configuration differs"
    diff <(echo "$want") <(head -n 4 <<<"$got") || true
    exit 1
fi
if [[ -z "$(sed -n 5p <<<"$got")" ]]; then
    echo "FAIL: a function call in the restored database failed"
    exit 1
fi
echo "ok: servers, user mappings and foreign tables survive pg_dump and restore"
