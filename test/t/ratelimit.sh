#!/bin/bash
# rate_limit() under concurrency: four sessions calling at once get exactly
# the limit allowed between them (the check-and-count is one script run in
# Redis); and after SCRIPT FLUSH (a restarted Redis) the script is loaded
# again without a failed call.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
# a database of its own: a fresh CREATE EXTENSION of this build
export PGDATABASE=regress_ratelimit_t
PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS regress_ratelimit_t" -c "CREATE DATABASE regress_ratelimit_t" >/dev/null
export REDISCLI_AUTH=$DC_REDIS_PASSWORD
RCLI=(redis-cli -h 127.0.0.1 -p "$DC_REDIS_PORT" --user "$DC_REDIS_USER" --no-auth-warning)
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
KEY=regress:t:concurrent

STATE=$(mktemp -d)
cleanup() {
    "${RCLI[@]}" del "datacore:ratelimit:$KEY" >/dev/null || true
    "${PSQL[@]}" -c "DROP SERVER IF EXISTS regress_rl CASCADE" >/dev/null 2>&1 || true
    rm -rf "$STATE"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS regress_ratelimit_t WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
failed=0

PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS regress_rl CASCADE;
CREATE SERVER regress_rl FOREIGN DATA WRAPPER datacore_redis
    OPTIONS (host '127.0.0.1', port '$DC_REDIS_PORT');
CREATE USER MAPPING FOR PUBLIC SERVER regress_rl
    OPTIONS (user '$DC_REDIS_USER', password '$DC_REDIS_PASSWORD');
SQL
"${RCLI[@]}" del "datacore:ratelimit:$KEY" >/dev/null

# four sessions, 300 calls each, limit 137 in a minute; they start
# together at the next full second so that their calls interleave
start=$(( $(date +%s) + 2 ))
pids=()
for n in 1 2 3 4; do
    "${PSQL[@]}" -c "SELECT pg_sleep($start - extract(epoch FROM clock_timestamp()))" \
        -c "SELECT count(*) FILTER (WHERE datacore.rate_limit('$KEY', 137, 'regress_rl'))
                     FROM generate_series(1, 300)" >"$STATE/s$n" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
total=$(awk "{s += \$1} END {print s}" "$STATE"/s*)
if [[ $total == 137 ]]; then
    echo "ok: 1200 concurrent calls, exactly 137 allowed ($(cat "$STATE"/s* | paste -sd' '))"
else
    echo "FAIL: $total allowed of 1200 with a limit of 137"; cat "$STATE"/s*; failed=1
fi

# the script is gone (Redis restarted, SCRIPT FLUSH): loaded again at once
"${RCLI[@]}" script flush >/dev/null
"${RCLI[@]}" del "datacore:ratelimit:$KEY" >/dev/null
out=$("${PSQL[@]}" -c "SELECT datacore.rate_limit('$KEY', 1, 'regress_rl'), datacore.rate_limit('$KEY', 1, 'regress_rl')" 2>&1)
if [[ $out == "t|f" ]]; then
    echo "ok: after SCRIPT FLUSH the limiter reloads its script"
else
    echo "FAIL: after SCRIPT FLUSH: $out"; failed=1
fi

exit $failed
