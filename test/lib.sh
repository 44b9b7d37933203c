# Shared by test/services, test/deps and test/check. Source it; it sets no shell
# options of its own so each caller keeps `set -euo pipefail` semantics.

DC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Every knob is an env var with a default, so several stacks (or a CI box with
# busy ports) can coexist by exporting different values.
: "${DC_STATE_DIR:=/tmp/datacore-stack}"
: "${DC_PGPORT:=55432}"
: "${DC_REDIS_PORT:=56379}"
: "${DC_OLLAMA_PORT:=51434}"
: "${DC_QDRANT_PORT:=56333}"
: "${DC_S3_PORT:=59000}"
: "${DC_S3RVER_PORT:=59001}"
# started only when asked for (test/services start standby|pgbouncer)
: "${DC_STANDBY_PORT:=55433}"
: "${DC_PGBOUNCER_PORT:=56432}"
: "${DC_REDIS_USER:=dc_app}"
: "${DC_REDIS_PASSWORD:=dc-redis-pw}"
: "${DC_S3_ACCESS_KEY:=dcaccess}"
: "${DC_S3_SECRET_KEY:=dcsecret/Key+1}"
: "${DC_S3_REGION:=us-east-1}"
: "${DC_S3_DIR:=$DC_STATE_DIR/s3}"
: "${DC_PRELOAD:=pg_cron,datacore}"
: "${DC_WAIT_SECS:=30}"
# The pg_config wrapper in /usr/bin picks the newest installed major; we build
# and run against 15 only.
: "${PG_CONFIG:=/usr/lib/postgresql/15/bin/pg_config}"

# Variables `test/services env` publishes; keep in sync with the defaults above.
DC_ENV_VARS=(DC_STATE_DIR DC_PGPORT DC_REDIS_PORT DC_OLLAMA_PORT DC_QDRANT_PORT
             DC_S3_PORT DC_S3RVER_PORT DC_STANDBY_PORT DC_PGBOUNCER_PORT DC_REDIS_USER DC_REDIS_PASSWORD
             DC_S3_ACCESS_KEY DC_S3_SECRET_KEY DC_S3_REGION DC_S3_DIR DC_PRELOAD)

dc_log()  { printf '%s\n' "$*" >&2; }
dc_die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# Quote a value for `eval` only when it needs it, so `env` output stays readable.
dc_shell_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:,+=@%-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# Print the last lines of a log so a failed wait says why without digging.
dc_log_tail() {
    local file=$1 n=${2:-30}
    if [[ -s $file ]]; then
        dc_log "---- last $n lines of $file ----"
        tail -n "$n" "$file" >&2
        dc_log "----"
    else
        dc_log "($file is empty or missing)"
    fi
}

# dc_wait_for DESC LOGFILE PID CMD...: poll CMD until it succeeds, for at most
# DC_WAIT_SECS. PID (may be empty) lets us fail fast when the process died.
dc_wait_for() {
    local desc=$1 logfile=$2 pid=$3; shift 3
    local deadline=$((SECONDS + DC_WAIT_SECS))
    while ! "$@" >/dev/null 2>&1; do
        if [[ -n $pid ]] && ! dc_alive "$pid"; then
            dc_log "error: $desc exited during startup"
            dc_log_tail "$logfile"
            return 1
        fi
        if (( SECONDS >= deadline )); then
            dc_log "error: $desc not ready after ${DC_WAIT_SECS}s"
            dc_log_tail "$logfile"
            return 1
        fi
        sleep 0.2
    done
}

# kill -0 also succeeds for a zombie; daemons are reparented to init, which
# may take a while to reap them, so a zombie counts as gone.
dc_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# True when PID is alive and its command line mentions PATTERN; guards against
# signalling an unrelated process that reused a stale pid.
dc_pid_matches() {
    local pid=$1 pattern=$2
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    dc_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# Daemons must not inherit the caller's descriptors: a held flock (test/check's
# lock) would otherwise outlive the caller inside redis or node. Use in the
# subshell that execs the daemon.
dc_close_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if [[ $fd =~ ^[0-9]+$ ]] && (( fd > 2 )); then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
}
