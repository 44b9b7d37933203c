#!/bin/bash
# The regression suite with the server under valgrind memcheck.
#
#   test/valgrind/check.sh [PARTS]     (make valgrind-check)
#
# The suite runs in PARTS (default 3) pieces; each piece takes the shared
# lock, installs this build, restarts postgres under valgrind
# (--trace-children, one log per process), runs its tests, stops postgres
# (every backend then reports its leaks) and starts it normally again, so
# the lock is never held for the whole run.  Fails if any process reports
# an invalid access, or an uninitialised value or a definitely lost block
# with a frame in datacore, libcurl, jansson, hiredis or libxml2.  Test
# diffs are listed but do not fail the run: under valgrind timeouts fire
# that never fire otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PARTS=${1:-3}
LOCKFILE=/tmp/datacore-check.lock
OUT=${DC_VALGRIND_OUT:-$DC_STATE_DIR/valgrind}
export DC_VALGRIND_SUPP=$PWD/test/valgrind/postgres.supp
rm -rf "$OUT"
mkdir -p "$OUT"
chmod 0777 "$OUT"

make -s PG_CONFIG="$PG_CONFIG"
# DC_VALGRIND_TESTS="a b" runs only those tests
mapfile -t tests < <(echo "${DC_VALGRIND_TESTS:-$(make -s --no-print-directory regress-list PG_CONFIG="$PG_CONFIG")}" | tr ' ' '\n')

PGDATA=$DC_STATE_DIR/pgdata
as_pg() { if (( EUID == 0 )); then runuser -u postgres -- "$@"; else "$@"; fi; }

run_part() {
    local part=$1; shift
    local dir=$OUT/part$part
    mkdir -p "$dir"
    chmod 0777 "$dir"
    (
        flock 9
        local start=$SECONDS
        make -s install PG_CONFIG="$PG_CONFIG" >/dev/null
        # a fresh stack from this tree, as test/check starts it
        test/services stop >/dev/null
        rm -rf "$PGDATA" "$DC_S3_DIR"
        test/services start >/dev/null
        eval "$(test/services env)"
        test/services stop postgres >/dev/null
        as_pg env DC_VALGRIND_DIR="$dir" DC_VALGRIND_SUPP="$DC_VALGRIND_SUPP" \
            "$(dirname "$PG_CONFIG")/pg_ctl" start -D "$PGDATA" -p "$PWD/test/valgrind/postgres-wrapper.sh" \
            -l "$dir/postgres.log" -w -t 300 -s >/dev/null
        make -s installcheck PG_CONFIG="$PG_CONFIG" REGRESS="$*" >"$dir/installcheck.log" 2>&1 || true
        [[ -f regression.diffs ]] && cp regression.diffs "$dir/regression.diffs"
        as_pg "$(dirname "$PG_CONFIG")/pg_ctl" stop -D "$PGDATA" -m fast -w -t 300 -s >/dev/null || true
        test/services start >/dev/null
        echo "part $part ($*): $((SECONDS - start)) s with the lock"
    ) 9>>"$LOCKFILE"
}

n=${#tests[@]}
per=$(( (n + PARTS - 1) / PARTS ))
for ((p = 0; p < PARTS; p++)); do
    slice=("${tests[@]:$((p * per)):per}")
    (( ${#slice[@]} )) || continue
    run_part "$p" "${slice[@]}"
done

# Every process's log: errors (with their stacks) that count.
bad=0
report=$OUT/report.txt
: >"$report"
ours='datacore\.so|libcurl|libjansson|libhiredis|libxml2'
for log in "$OUT"/part*/[0-9]*.log; do
    # valgrind separates records with a line holding only "==PID== "
    awk -v ours="$ours" -v file="$log" '
        /^==[0-9]+== $/ { flush(); next }
        { rec = rec $0 "\n" }
        END { flush() }
        function flush() {
            if (rec ~ /Invalid (read|write|free)|Mismatched free|Source and destination overlap/ ||
                (rec ~ /uninitialised|definitely lost/ && rec ~ ours))
                printf "%s\n%s\n", file, rec
            rec = ""
        }' "$log" >>"$report"
done
procs=$(ls "$OUT"/part*/[0-9]*.log 2>/dev/null | wc -l)
if [[ -s $report ]]; then
    bad=1
    echo "valgrind: errors in datacore or its libraries (full list: $report):"
    head -n 80 "$report"
else
    echo "valgrind: no invalid access, no uninitialised use or definite leak in datacore, libcurl, jansson, hiredis or libxml2 frames ($procs processes)"
fi
grep -h "ERROR SUMMARY" "$OUT"/part*/[0-9]*.log | sort | uniq -c | sort -rn | head -5 || true
for d in "$OUT"/part*; do
    [[ -f $d/regression.diffs ]] && echo "(test diffs under valgrind: $d/regression.diffs)"
done
exit $bad
