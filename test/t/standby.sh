#!/bin/bash
# datacore on a hot standby (test/services start standby: pg_basebackup -R
# of the stack's primary, same shared_preload_libraries).
#
# On the standby the calls that only read work: generate, embed, Qdrant
# search, S3 and Redis gets, and a STABLE SQL function (the RPC of a
# PostgREST GET) in a READ ONLY transaction.  Whatever must write — enqueue
# and the _async calls, rag_sync, s3_put, redis_set, qdrant_upsert — fails
# with 25006 and the hint to run it on the primary, before any request is
# sent.  The job worker does not run there; after `pg_ctl promote` it
# starts and runs the jobs the primary had queued.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
DB=regress_standby_t
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
psql_at() { local port=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" "$@"; }
primary() { psql_at "$DC_PGPORT" -d "$DB" "$@"; }
standby() { psql_at "$DC_STANDBY_PORT" -d "$DB" "$@"; }
as_pg() { if (( EUID == 0 )); then runuser -u postgres -- "$@"; else "$@"; fi; }
log_of() { curl -sS "http://127.0.0.1:$1/_test/log"; }
clear_logs() {
    local port
    for port in "$DC_OLLAMA_PORT" "$DC_QDRANT_PORT" "$DC_S3_PORT"; do
        curl -sS -X DELETE "http://127.0.0.1:$port/_test/log" >/dev/null
    done
}

cleanup() {
    test/services stop standby >/dev/null 2>&1 || true
    primary -c "SELECT datacore.qdrant_drop_collection('regress_standby', true)" \
            -c "SELECT datacore.s3_delete('regress-standby', 'k')" \
            -c "SELECT datacore.s3_delete_bucket('regress-standby')" \
            -c "SELECT datacore.redis_del('regress:standby:k')" >/dev/null 2>&1 || true
    # the jobs left queued on the primary go with the database, before its
    # worker is allowed back
    psql_at "$DC_PGPORT" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    psql_at "$DC_PGPORT" -d postgres -c "ALTER SYSTEM RESET datacore.job_worker" \
            -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap cleanup EXIT

failed=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [[ $2 == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected '$2', got '$3'"; failed=1; fi
}

# ------------------------------------------------------------ the primary
psql_at "$DC_PGPORT" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
primary -f test/regress/setup.psql >/dev/null
primary >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT datacore.s3_create_bucket('regress-standby');
SELECT datacore.s3_put('regress-standby', 'k', 'stored on the primary'::text);
SELECT datacore.redis_set('regress:standby:k', 'cached on the primary');
SELECT datacore.qdrant_create_collection('regress_standby', 3, if_not_exists => true);
SELECT datacore.qdrant_upsert('regress_standby', 1, '{1,0,0}', '{"doc": "one"}');
CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, updated timestamptz NOT NULL DEFAULT now());
INSERT INTO docs VALUES (1, 'a document');
SELECT datacore.rag_create('regress_standby_docs', 'docs', 'id', 'body', 'updated', 'regress_standby_rag');
-- the RPC a PostgREST GET calls: STABLE, run READ ONLY
CREATE FUNCTION summary(topic text) RETURNS jsonb LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object('answer', datacore.ollama_generate('Summarise ' || topic),
							  'cached', datacore.redis_get('regress:standby:k'),
							  'stored', datacore.s3_get_text('regress-standby', 'k'))
$$;
SQL
test/services start standby >/dev/null
# A job queued now must wait for the promotion, so the primary's own worker
# is off: ALTER SYSTEM writes a file of the primary, which is neither
# replicated nor, once the base backup is taken, copied.
psql_at "$DC_PGPORT" -d postgres -c "ALTER SYSTEM SET datacore.job_worker = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
curl -sS -X DELETE "http://127.0.0.1:$DC_OLLAMA_PORT/_test/log" >/dev/null
job=$(primary -c "SELECT datacore.ollama_generate_async('queued on the primary')")
lsn=$(psql_at "$DC_PGPORT" -d postgres -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 100); do
    [[ $(psql_at "$DC_STANDBY_PORT" -d postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'") == t ]] && break
    sleep 0.1
done
check "the replica is in recovery" t "$(standby -c "SELECT pg_is_in_recovery()")"
check "the primary's queued job is on the replica" queued \
    "$(standby -c "SELECT state FROM datacore.jobs WHERE id = $job")"
check "no datacore worker runs on the replica" 0 \
    "$(standby -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'datacore%'")"

# ------------------------------------------------------------ reads work
clear_logs
check "ollama_generate" '"echo: read on the standby"' \
    "$(standby -c "SELECT to_jsonb(datacore.ollama_generate('read on the standby'))")"
check "ollama_embed" t "$(standby -c "SELECT cardinality(datacore.ollama_embed('read on the standby')) > 0")"
check "qdrant_search" 1 "$(standby -c "SELECT id FROM datacore.qdrant_search('regress_standby', '{1,0,0}', 1)")"
check "s3_get_text" "stored on the primary" "$(standby -c "SELECT datacore.s3_get_text('regress-standby', 'k')")"
check "redis_get" "cached on the primary" "$(standby -c "SELECT datacore.redis_get('regress:standby:k')")"
check "a STABLE RPC in a READ ONLY transaction" '"echo: Summarise runways"|cached on the primary|stored on the primary' \
    "$(standby -c "BEGIN READ ONLY" -c "SELECT s->'answer', s->>'cached', s->>'stored' FROM summary('runways') s" -c "COMMIT")"

# ------------------------------------------------------------ writes refused
clear_logs
refusal() {   # SQLSTATE and HINT of a statement on the standby
    standby -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -c "$1" 2>&1 |
        sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p; s/^HINT:  //p' | paste -sd'|'
}
hint='25006|Run it on the primary server.'
for stmt in \
    "SELECT datacore.enqueue('ollama_generate', '{\"prompt\": \"x\"}', 'ollama')" \
    "SELECT datacore.ollama_generate_async('x')" \
    "SELECT datacore.s3_put_async('regress-standby', 'k2', 'x'::text)" \
    "SELECT datacore.rag_sync('regress_standby_docs')" \
    "SELECT datacore.s3_put('regress-standby', 'k2', 'x'::text)" \
    "SELECT datacore.s3_delete('regress-standby', 'k')" \
    "SELECT datacore.redis_set('regress:standby:k', 'x')" \
    "SELECT datacore.redis_command('{DEL,regress:standby:k}')" \
    "SELECT datacore.qdrant_upsert('regress_standby', 2, '{0,1,0}')" \
    "SELECT datacore.qdrant_create_collection('regress_standby_2', 3)" \
    "SELECT datacore.run_jobs()"; do
    check "refused with the hint: $stmt" "$hint" "$(refusal "$stmt")"
done
check "nothing was sent to the model, S3 or Qdrant" "0 0 0" \
    "$(for port in "$DC_OLLAMA_PORT" "$DC_S3_PORT" "$DC_QDRANT_PORT"; do log_of "$port" | jq -s length; done | paste -sd' ')"
check "the Redis value is unchanged" "cached on the primary" "$(standby -c "SELECT datacore.redis_get('regress:standby:k')")"
# the limiter keeps its counts in Redis, not in the database: it works here
check "rate_limit on the standby" t "$(standby -c "SELECT datacore.rate_limit('regress:standby:rl', 10)")"
primary -c "SELECT datacore.redis_del('regress:standby:rl')" >/dev/null

# ------------------------------------------------------------ promotion
curl -sS -X DELETE "http://127.0.0.1:$DC_OLLAMA_PORT/_test/log" >/dev/null
as_pg "$BIN/pg_ctl" promote -D "$DC_STATE_DIR/standby" -w -s
check "promoted" f "$(standby -c "SELECT pg_is_in_recovery()")"
for _ in $(seq 200); do
    [[ $(standby -c "SELECT state FROM datacore.jobs WHERE id = $job") == succeeded ]] && break
    sleep 0.1
done
check "after promotion the worker ran the queued job" succeeded \
    "$(standby -c "SELECT state FROM datacore.jobs WHERE id = $job")"
check "a datacore job launcher runs on the promoted server" t \
    "$(standby -c "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'datacore job launcher'")"
check "the job's request reached the model once" 1 \
    "$(log_of "$DC_OLLAMA_PORT" | grep -c 'queued on the primary' || true)"
exit $failed
