#!/bin/bash
# Where the time of one datacore.ollama_generate() call goes: N (400000)
# calls against the nginx stub (test/bench/stub) in one session, sampled
# with `perf record -g` on that backend; prints the top symbols (self time)
# and the split by library.  Builds and installs this tree and restarts the
# stack's PostgreSQL, so run it under the shared lock:
#   flock /tmp/datacore-check.lock test/bench/ollama/profile.sh
# PERF_SECS (5) is how long perf samples.  Keep the perf.data with
# DC_BENCH_KEEP=DIR.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
bench_install

N=${N:-400000}
PERF_SECS=${PERF_SECS:-5}
DB=dc_bench_profile
WORK=$(mktemp -d)
stub_start
cleanup() {
	stub_stop
	[[ -n ${DC_BENCH_KEEP:-} ]] && cp "$WORK/perf.data" "$DC_BENCH_KEEP/" 2>/dev/null
	rm -rf "$WORK"
	psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql -qX -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url '$STUB_URL', model 'llama3.2');
SQL

PGAPPNAME=dc_profile psql -qX -d "$DB" -v ON_ERROR_STOP=1 >/dev/null <<SQL &
DO \$\$
DECLARE t text;
BEGIN
	FOR i IN 1..$N LOOP
		t := datacore.ollama_generate('hi');
	END LOOP;
END \$\$;
SQL
loop=$!
pid=
for _ in $(seq 50); do
	pid=$(psql -qXAt -d postgres -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'dc_profile' AND state = 'active'")
	[[ -n $pid ]] && break
	sleep 0.1
done
[[ -n $pid ]] || { echo "profile: the backend did not show up" >&2; exit 1; }
sleep 0.5	# past the first calls (cache fills, connection set up)
# perf stops on SIGINT (timeout runs it in a process group of its own;
# given a command to time itself, perf would signal this script's group)
timeout -s INT "$PERF_SECS" perf record -g -p "$pid" -o "$WORK/perf.data" >"$WORK/perf.log" 2>&1 || true
wait "$loop"

echo "== $N ollama_generate() calls against the nginx stub, backend $pid sampled for ${PERF_SECS}s"
echo "-- by library (self time)"
perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -12 || true
echo "-- top symbols (self time)"
perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9]' | head -45 || true
echo "-- callers of the kernel time, by datacore/libcurl/postgres frame (children)"
perf report -i "$WORK/perf.data" --stdio --children -g none --sort symbol 2>/dev/null | grep -E '^ +[0-9]' | head -45 || true
