#!/bin/bash
# datacore behind PgBouncer in transaction pooling (test/services start
# pgbouncer: Debian's pgbouncer, server_round_robin, so consecutive
# transactions of one client run on different backends).
#
# 1. The regression tests whose statements stand alone run through it
#    unchanged: BOUNCER_TESTS below.  The others lean on session state by
#    design, not because of datacore: SET ROLE to act as an application
#    role, SET statement_timeout around a cancel, SET datacore.* and
#    default_transaction_read_only, pg_temp helpers created in one
#    statement and used in the next.  Under transaction pooling the next
#    statement may run on another backend, which has none of it (or worse,
#    a backend another client left in SET ROLE): docs/operations.md "Behind
#    PgBouncer".
# 2. What would be session state in datacore itself is refused or is not
#    session state: Redis MULTI/WATCH/SELECT are refused (0A000) and
#    redis_transaction is one statement; each server's Redis db is its own
#    whichever backend runs the call; a job enqueued in one transaction is
#    waited for in another (job_wait polls the table, no LISTEN); protocol
#    level prepared statements fail loudly (26000), never run the wrong
#    statement.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
DB=regress_bouncer_t
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
BOUNCER_TESTS=(core_options ratelimit)
OUT=$(mktemp -d)
started=0

direct() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DC_PGPORT" "$@"; }
bounced() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DC_PGBOUNCER_PORT" -d "$DB" "$@"; }

cleanup() {
    (( started )) && test/services stop pgbouncer >/dev/null 2>&1 || true
    direct -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    direct -d postgres -c "DROP ROLE IF EXISTS regress_bouncer_app" >/dev/null 2>&1 || true
    rm -rf "$OUT"
}
trap cleanup EXIT

failed=0
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [[ $2 == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected '$2', got '$3'"; failed=1; fi
}

test/services status pgbouncer >/dev/null 2>&1 || { test/services start pgbouncer >/dev/null; started=1; }
direct -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
# what pg_regress asks for in PGOPTIONS, which pgbouncer cannot pass on
direct -d postgres -c "ALTER DATABASE $DB SET intervalstyle = postgres_verbose"

# several server connections in the pool before the tests start, so that
# round robin has somewhere to go
for _ in 1 2 3; do bounced -c "SELECT pg_sleep(0.3)" >/dev/null & done
wait
backends=$(for _ in 1 2 3 4 5 6; do bounced -c "SELECT pg_backend_pid()"; done | sort -u | wc -l)
(( backends > 1 )) && check "consecutive transactions of one client run on several backends" ok ok ||
    check "consecutive transactions of one client run on several backends" "more than 1" "$backends"

# ---------------------------------------------------------------- 1. pg_regress
if "$PG_REGRESS" --inputdir=. --outputdir="$OUT" --bindir="$BIN" --host=127.0.0.1 \
        --port="$DC_PGBOUNCER_PORT" --use-existing --dbname="$DB" "${BOUNCER_TESTS[@]}" >"$OUT/run.log" 2>&1; then
    check "${#BOUNCER_TESTS[@]} regression tests through pgbouncer" ok ok
else
    cat "$OUT/run.log"
    head -n 150 "$OUT/regression.diffs" 2>/dev/null || true
    check "${#BOUNCER_TESTS[@]} regression tests through pgbouncer" ok failed
fi

# ---------------------------------------------------------------- 2. session state
bounced <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
CREATE SERVER regress_bouncer_r0 FOREIGN DATA WRAPPER datacore_redis
    OPTIONS (host '127.0.0.1', port '$DC_REDIS_PORT', db '0');
CREATE SERVER regress_bouncer_r1 FOREIGN DATA WRAPPER datacore_redis
    OPTIONS (host '127.0.0.1', port '$DC_REDIS_PORT', db '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_bouncer_r0
    OPTIONS (user '$DC_REDIS_USER', password '$DC_REDIS_PASSWORD');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_bouncer_r1
    OPTIONS (user '$DC_REDIS_USER', password '$DC_REDIS_PASSWORD');
CREATE SERVER regress_bouncer_ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', model 'llama3.2');
SQL

# a connection-level MULTI, WATCH or SELECT would outlive the statement on
# a backend the next client gets: refused
for cmd in MULTI '{WATCH,regress:bouncer:k}' '{SELECT,1}'; do
    [[ $cmd == MULTI ]] && cmd='{MULTI}'
    state=$(bounced -c "DO \$\$BEGIN PERFORM datacore.redis_command('$cmd', 'regress_bouncer_r0');
        RAISE NOTICE 'ran'; EXCEPTION WHEN OTHERS THEN RAISE WARNING '%', SQLSTATE; END\$\$" 2>&1 | sed 's/.*: *//')
    check "redis_command $cmd is refused" 0A000 "$state"
done
check "redis_transaction is one statement, so it pools" '["OK", "OK", "2"]' \
    "$(bounced -c "SELECT datacore.redis_transaction('{{SET,regress:bouncer:t,1},{SET,regress:bouncer:u,2},{GET,regress:bouncer:u,NULL}}', 'regress_bouncer_r0')")"

# each server's db, whichever backend (and its cached connections) runs it
for i in 1 2 3 4; do
    bounced -c "SELECT datacore.redis_set('regress:bouncer:db', 'zero', server => 'regress_bouncer_r0')" >/dev/null
    bounced -c "SELECT datacore.redis_set('regress:bouncer:db', 'one', server => 'regress_bouncer_r1')" >/dev/null
done
seen=$(for i in 1 2 3 4; do
    bounced -c "SELECT datacore.redis_get('regress:bouncer:db', 'regress_bouncer_r0') || '/' || datacore.redis_get('regress:bouncer:db', 'regress_bouncer_r1')"
done | sort -u | paste -sd,)
check "a server's Redis db is its own on every pooled backend" "zero/one" "$seen"
bounced -c "SELECT datacore.redis_command('{DEL,regress:bouncer:db,regress:bouncer:t,regress:bouncer:u}', 'regress_bouncer_r0'),
                   datacore.redis_command('{DEL,regress:bouncer:db}', 'regress_bouncer_r1')" >/dev/null

# a job enqueued in one transaction, waited for in later ones
id=$(bounced -c "SELECT datacore.ollama_generate_async('through the pool', server => 'regress_bouncer_ollama')")
check "job_wait in another transaction sees the job finish" '"echo: through the pool"' \
    "$(bounced -c "SELECT datacore.job_wait($id, '20 seconds')")"

# protocol-level prepared statements: pgbouncer 1.18 does not track them, so
# the second use fails on a backend that does not have it, loudly
cat >"$OUT/get.sql" <<'SQL'
SELECT datacore.redis_get('regress_bouncer_none', 'regress_bouncer_r0');
SQL
if "$BIN/pgbench" -n -h 127.0.0.1 -p "$DC_PGBOUNCER_PORT" -M extended -c 4 -j 2 -t 25 \
        -f "$OUT/get.sql" "$DB" >"$OUT/pgbench-extended.log" 2>&1; then
    check "unnamed extended-protocol statements, 4 clients through the pool" ok ok
else
    cat "$OUT/pgbench-extended.log"
    check "unnamed extended-protocol statements, 4 clients through the pool" ok failed
fi
if "$BIN/pgbench" -n -h 127.0.0.1 -p "$DC_PGBOUNCER_PORT" -M prepared -c 4 -j 2 -t 25 \
        -f "$OUT/get.sql" "$DB" >"$OUT/pgbench-prepared.log" 2>&1; then
    check "named prepared statements through transaction pooling fail loudly" "an error" "none"
else
    grep -q 'prepared statement "P_0" does not exist\|prepared statement .* already exists' "$OUT/pgbench-prepared.log" &&
        check "named prepared statements through transaction pooling fail loudly" ok ok ||
        { cat "$OUT/pgbench-prepared.log"; check "named prepared statements fail loudly" "26000/42P05" "other"; }
fi
exit $failed
