#!/bin/bash
# Benchmark: a call whose circuit breaker is open, against a plain caught
# error.  Both run in a PL/pgSQL loop inside an exception block, so the
# subtransaction and error machinery cost the same; the difference is what
# the fail-fast path adds (server lookup, USAGE check, shared-memory breaker
# lookup, building the 08006 error).
#
#   flock /tmp/datacore-check.lock test/bench/breaker/run.sh [rounds] [calls]
#
# Installs this tree first (bench_install), uses a scratch database
# breaker_bench.  Prints per-call medians in microseconds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
bench_install

ROUNDS=${1:-7}
CALLS=${2:-100000}
DB=breaker_bench
export PGOPTIONS="-c client_min_messages=warning"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB")

"${PSQL[@]}" <<'SQL'
CREATE EXTENSION datacore;
-- nobody listens on port 1: one refused connection opens the breaker
CREATE SERVER bench_open FOREIGN DATA WRAPPER datacore_ollama
	OPTIONS (url 'http://127.0.0.1:1', breaker_threshold '1',
			 breaker_cooldown_ms '3600000');
DO $$ BEGIN PERFORM datacore.ollama_version('bench_open');
EXCEPTION WHEN OTHERS THEN NULL; END $$;

-- microseconds per call of the loop body, timed inside the backend
CREATE FUNCTION bench_open(n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			PERFORM datacore.ollama_version('bench_open');
		EXCEPTION WHEN connection_failure THEN NULL;
		END;
	END LOOP;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END $$;
CREATE FUNCTION bench_plain(n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
	zero int := 0;
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			PERFORM 1 / zero;
		EXCEPTION WHEN division_by_zero THEN NULL;
		END;
	END LOOP;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END $$;
SQL
# breaker_status() has the server in every version; the first call must fail fast
n=$("${PSQL[@]}" -c "SELECT count(*) FROM datacore.breaker_status() WHERE server = 'bench_open'")
[[ $n == 1 ]] || { echo "the breaker did not open" >&2; exit 1; }
out=$("${PSQL[@]}" -c "SELECT datacore.ollama_version('bench_open')" 2>&1 || true)
[[ $out == *"was not attempted"* ]] || { echo "the breaker is not open: $out" >&2; exit 1; }

open=() plain=() over=()
for ((r = 0; r < ROUNDS; r++)); do
	o=$("${PSQL[@]}" -c "SELECT bench_open($CALLS)")
	p=$("${PSQL[@]}" -c "SELECT bench_plain($CALLS)")
	open+=("$o"); plain+=("$p")
	over+=("$(awk -v o="$o" -v p="$p" 'BEGIN {printf "%.3f", o - p}')")
done
printf '%-44s %8.2f us\n' "open breaker, caught (median)" "$(printf '%s\n' "${open[@]}" | median)"
printf '%-44s %8.2f us\n' "plain caught error (median)" "$(printf '%s\n' "${plain[@]}" | median)"
printf '%-44s %8.2f us   (rounds: %s)\n' "open breaker over a plain caught error" \
	"$(printf '%s\n' "${over[@]}" | median)" "${over[*]}"
