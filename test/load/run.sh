#!/bin/bash
# Concurrent load: pgbench clients running a weighted mix of datacore calls
# against the local stack, twice.
#
#   steady  the chain RPC on its cached path, Redis GET/SET, S3 GET/PUT of
#           1 KiB objects, Qdrant search/upsert; every service up.  Passes
#           with no failed transaction, no error in the server log and no
#           breaker leaving "closed".
#   flap    the same mix plus the chain on its cold path (its cached answer
#           dropped before each call), while the Ollama stand-in is stopped
#           5 s of every 15.  Passes when every chain answer is fresh or
#           stale (no failed transaction, no error in the server log) and the
#           jobs queued meanwhile drain once it is back.
#
#   test/load/run.sh [--clients N] [--seconds S] [--phase steady|flap|both] [--no-write]
#
# Defaults: 16 clients, 60 s per phase, both phases.  Takes the stack lock
# (/tmp/datacore-check.lock) itself, installs this tree's build, (re)starts
# the stack's PostgreSQL, runs in a database of its own (dc_load) and
# removes what it made afterwards.  Prints the result table; after a passing
# run of both phases with the defaults it rewrites the "Concurrent load"
# table in docs/reliability.md (--no-write keeps the page as it is).  Exits
# non-zero when a phase fails.  Not part of test/check (about 2.5 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh

CLIENTS=16
SECONDS_PER_PHASE=60
PHASES=(steady flap)
WRITE=1
LOCKFILE=/tmp/datacore-check.lock
DB=dc_load
DOC=docs/reliability.md

usage() {
    sed -n '2,24s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

while (( $# )); do
    case $1 in
        --clients) CLIENTS=$2; shift 2 ;;
        --seconds) SECONDS_PER_PHASE=$2; shift 2 ;;
        --phase)
            case $2 in
                steady|flap) PHASES=("$2") ;;
                both) PHASES=(steady flap) ;;
                *) usage ;;
            esac
            shift 2 ;;
        --no-write) WRITE=0; shift ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
done
[[ $CLIENTS =~ ^[1-9][0-9]*$ && $SECONDS_PER_PHASE =~ ^[1-9][0-9]*$ ]] || usage
# Only the documented run goes into the page.
(( CLIENTS == 16 && SECONDS_PER_PHASE == 60 && ${#PHASES[@]} == 2 )) || WRITE=0

PGBENCH=$("$PG_CONFIG" --bindir)/pgbench
[[ -x $PGBENCH ]] || dc_die "$PGBENCH not found: run test/deps (package postgresql-15)"
THREADS=$(( $(nproc) * 2 ))
(( THREADS <= CLIENTS )) || THREADS=$CLIENTS

WORK=$(mktemp -d /tmp/dc-load.XXXXXX)
BG_PIDS=()

# Mix per phase: script name, weight.  chain_cold only while Ollama flaps.
MIX_steady=(chain_cached 4 redis_get 3 redis_set 2 s3_get 2 s3_put 1 qdrant_search 2 qdrant_upsert 1)
MIX_flap=(chain_cached 4 chain_cold 2 redis_get 3 redis_set 2 s3_get 2 s3_put 1 qdrant_search 2 qdrant_upsert 1)

q() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
qa() { psql -X -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# What the run made on the stack goes; the stand-in is left running.
stack_cleanup() {
    local p pattern role
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    BG_PIDS=()
    if [[ -n ${PGLOG:-} ]]; then
        # The stand-in must not stay down whatever happened.
        test/services start ollama >/dev/null 2>&1 || true
        qa -c "SELECT datacore.qdrant_drop_collection('load', if_exists => true)" >/dev/null 2>&1 || true
        curl -s -o /dev/null --max-time 10 -X DELETE "http://127.0.0.1:$DC_S3_PORT/_test/objects?bucket=load" || true
        # the chain's documents: the bucket if the run made it, else those of this run
        if [[ -e $WORK/summaries-existed ]]; then
            qa -c "SELECT count(datacore.s3_delete('summaries', key)) FROM datacore.s3_list('summaries')
                    WHERE last_modified >= to_timestamp($RUN_START) - interval '1 second'" >/dev/null 2>&1 || true
        else
            curl -s -o /dev/null --max-time 10 -X DELETE "http://127.0.0.1:$DC_S3_PORT/_test/objects?bucket=summaries" || true
        fi
        for pattern in 'load:*' 'datacore:summary:aerovista_owner:*' 'datacore:ratelimit:aerovista:summary:sub:load-*'; do
            REDISCLI_AUTH=$DC_REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$DC_REDIS_PORT" --user "$DC_REDIS_USER" \
                --scan --pattern "$pattern" 2>/dev/null |
                REDISCLI_AUTH=$DC_REDIS_PASSWORD xargs -r -n 500 redis-cli -h 127.0.0.1 -p "$DC_REDIS_PORT" \
                    --user "$DC_REDIS_USER" del >/dev/null 2>&1 || true
        done
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
        for role in web_anon aerovista_owner; do
            if [[ ! -e $WORK/role-$role-existed ]]; then
                psql -X -q -d postgres -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
            fi
        done
        PGLOG=
    fi
}
trap 'stack_cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ stack

exec {lockfd}>>"$LOCKFILE"
chmod 0666 "$LOCKFILE" 2>/dev/null || true
if ! flock -n "$lockfd"; then
    dc_log "waiting for the stack lock ($LOCKFILE)"
    flock "$lockfd"
fi
LOCK_START=$SECONDS
RUN_START=$(date +%s)

make -s PG_CONFIG="$PG_CONFIG" >/dev/null
make -s install PG_CONFIG="$PG_CONFIG" >/dev/null
test/services start >/dev/null
test/services restart postgres >/dev/null
eval "$(test/services env)"
PGLOG=$DC_STATE_DIR/log/postgres.log

# What existed before stays after the run.
for role in web_anon aerovista_owner; do
    if [[ $(psql -X -At -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'") == 1 ]]; then
        : >"$WORK/role-$role-existed"
    fi
done
# s3rver keeps a bucket as a directory of that name
if [[ -d $DC_S3_DIR/summaries ]]; then : >"$WORK/summaries-existed"; fi

redis_user=()
[[ -n ${DC_REDIS_USER:-} ]] && redis_user=(-v redis_user="$DC_REDIS_USER")
PGOPTIONS='-c client_min_messages=warning' psql -X -q -d postgres \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
PGOPTIONS='-c client_min_messages=warning' q -o /dev/null \
    -v ollama_url="http://127.0.0.1:$DC_OLLAMA_PORT" \
    -v qdrant_url="http://127.0.0.1:$DC_QDRANT_PORT" \
    -v s3_url="http://127.0.0.1:$DC_S3_PORT" \
    -v s3_access_key="$DC_S3_ACCESS_KEY" -v s3_secret_key="$DC_S3_SECRET_KEY" \
    -v redis_port="$DC_REDIS_PORT" "${redis_user[@]}" -v redis_password="$DC_REDIS_PASSWORD" \
    -f docs/examples/aerovista-servers.sql -f docs/examples/aerovista.sql -f test/load/setup.sql

# ------------------------------------------------------------------ helpers

# Breaker states every half second, as "epoch server state failures".
sample_breakers() {
    while :; do
        # one line per sample even when no breaker has a failure on record
        qa -F ' ' -c "SELECT extract(epoch FROM now())::numeric(12,1), coalesce(b.server, '-'),
                             coalesce(replace(b.state, ' ', '_'), 'closed'), coalesce(b.failures, 0)
                        FROM (SELECT) x LEFT JOIN datacore.breakers b ON true" 2>/dev/null || true
        sleep 0.5
    done
}

# Ollama down 5 s of every 15: up 5 s, down 5 s, up 5 s, and again; the
# run ends on an up window.  Prints "down EPOCH" / "up EPOCH" lines.
flap_ollama() {
    local end=$((SECONDS + SECONDS_PER_PHASE))
    sleep 5
    while (( SECONDS + 5 <= end )); do
        test/services stop ollama >/dev/null 2>&1
        echo "down $(date +%s.%N)"
        sleep 5
        test/services start ollama >/dev/null 2>&1
        echo "up $(date +%s.%N)"
        (( SECONDS + 15 <= end )) || break
        sleep 10
    done
}

# Jobs of this database that are not finished, until none is left or 120 s
# pass; prints the seconds it took.
drain_jobs() {
    local start=$SECONDS left
    while :; do
        left=$(qa -c "SELECT count(*) FROM datacore.jobs WHERE state IN ('queued', 'running')")
        (( left == 0 )) && break
        (( SECONDS - start < 120 )) || break
        sleep 0.5
    done
    echo $((SECONDS - start))
}

run_phase() {
    local phase=$1 mix_var="MIX_$1[@]" args=() mix name weight rc=0 logoff flapper sampler
    mix=("${!mix_var}")
    for ((i = 0; i < ${#mix[@]}; i += 2)); do
        args+=(-f "test/load/scripts/${mix[i]}.sql@${mix[i + 1]}")
    done
    printf '%s\n' "${mix[@]}" | paste - - >"$WORK/$phase.mix"

    q -c "TRUNCATE load.outcomes, load.metrics_before" \
      -c "INSERT INTO load.metrics_before SELECT server, operation, requests, errors
            FROM datacore.metrics WHERE database = current_database()"
    date +%s.%N >"$WORK/$phase.start"
    logoff=$(stat -c %s "$PGLOG")

    sample_breakers >"$WORK/$phase.breakers" 2>/dev/null &
    sampler=$!
    BG_PIDS+=("$sampler")
    if [[ $phase == flap ]]; then
        flap_ollama >"$WORK/$phase.flaps" 2>&1 &
        flapper=$!
        BG_PIDS+=("$flapper")
    fi

    dc_log "load: phase $phase, $CLIENTS clients x ${SECONDS_PER_PHASE} s"
    "$PGBENCH" -n -h 127.0.0.1 -p "$DC_PGPORT" -U postgres -c "$CLIENTS" -j "$THREADS" \
        -T "$SECONDS_PER_PHASE" "${args[@]}" --log --log-prefix="$WORK/$phase.tx" "$DB" \
        >"$WORK/$phase.out" 2>"$WORK/$phase.err" || rc=$?
    echo "$rc" >"$WORK/$phase.rc"

    if [[ $phase == flap ]]; then
        wait "$flapper" || true
        test/services start ollama >/dev/null 2>&1
        drain_jobs >"$WORK/$phase.drain"
    fi
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    BG_PIDS=()

    tail -c +"$((logoff + 1))" "$PGLOG" | grep -F "@$DB " | grep -E ' (ERROR|FATAL|PANIC): ' >"$WORK/$phase.errors" || true
    qa -F $'\t' -c "SELECT script, outcome, count(*) FROM load.outcomes GROUP BY 1, 2 ORDER BY 1, 2" >"$WORK/$phase.outcomes"
    qa -F $'\t' -c "
        SELECT m.server, sum(m.requests - coalesce(b.requests, 0)), sum(m.errors - coalesce(b.errors, 0))
          FROM datacore.metrics m
          LEFT JOIN load.metrics_before b USING (server, operation)
         WHERE m.database = current_database()
         GROUP BY 1 ORDER BY 1" >"$WORK/$phase.metrics"
    qa -F $'\t' -c "
        SELECT s.state, count(j.id)
          FROM unnest(ARRAY['queued', 'running', 'succeeded', 'failed', 'dead']) s(state)
          LEFT JOIN datacore.jobs j
            ON j.state = s.state AND j.created_at >= to_timestamp($(cat "$WORK/$phase.start"))
         GROUP BY s.state ORDER BY min(array_position(ARRAY['queued', 'running', 'succeeded', 'failed', 'dead'], s.state))" \
        >"$WORK/$phase.jobs"
    cat "$WORK"/"$phase".tx.* >"$WORK/$phase.log" 2>/dev/null || : >"$WORK/$phase.log"
}

for phase in "${PHASES[@]}"; do
    run_phase "$phase"
done
LOCK_SECS=$((SECONDS - LOCK_START))

stack_cleanup
exec {lockfd}>&-

report=(python3 test/load/report.py --dir "$WORK" --clients "$CLIENTS" --threads "$THREADS"
        --seconds "$SECONDS_PER_PHASE" --lock-seconds "$LOCK_SECS" --phases "${PHASES[@]}")
(( WRITE )) && report+=(--write "$DOC")
"${report[@]}"
