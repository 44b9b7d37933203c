#!/bin/bash
# The metrics table's cap: with datacore.metrics_max_entries = 16, the first
# 16 keys are counted and the requests of further keys only in the overflow
# counter, shared by all backends; reset_metrics() frees the table, and a
# backend that remembered slots from before the reset counts each key under
# its own name afterwards, never under the key that took its old slot.
# Restarts the stack's PostgreSQL twice (setting on, setting off).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
db=regress_metrics_overflow

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

cleanup() {
    q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    q -d postgres -c "ALTER SYSTEM RESET datacore.metrics_max_entries" >/dev/null 2>&1 || true
    test/services restart postgres >/dev/null 2>&1 || true
}
trap cleanup EXIT

q -d postgres -c "ALTER SYSTEM SET datacore.metrics_max_entries = 16" >/dev/null
test/services restart postgres >/dev/null
[[ $(q -d postgres -c "SHOW datacore.metrics_max_entries") == 16 ]] || fail "setting not in effect"

q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
# 20 servers that refuse connections at once: one key each
q -d $db >/dev/null <<SQL
CREATE EXTENSION datacore;
SELECT format('CREATE SERVER regress_full_%s FOREIGN DATA WRAPPER datacore_ollama OPTIONS (url %L)',
              i, 'http://127.0.0.1:1') FROM generate_series(1, 20) i \gexec
SELECT datacore.reset_metrics();
SQL
call() {   # call SERVER...: one failing request to each, each in its own statement
    local s
    for s in "$@"; do
        q -d $db -c "SELECT datacore.ollama_version('regress_full_$s')" >/dev/null 2>&1 && fail "regress_full_$s answered"
    done
    return 0
}
call $(seq 1 20)
got=$(q -d $db -F ' ' -c "SELECT entries, max_entries, overflow FROM datacore.metrics_info()")
[[ $got == "16 16 4" ]] || fail "after 20 keys: entries, max_entries, overflow = $got (expected 16 16 4)"
got=$(q -d $db -c "SELECT string_agg(server || ':' || requests, ' ' ORDER BY server) FROM datacore.metrics
                    WHERE server IN ('regress_full_1', 'regress_full_16', 'regress_full_17')")
[[ $got == "regress_full_1:1 regress_full_16:1" ]] || fail "counted keys: $got"
# a full table stays full for new keys, from any backend; known keys still count
call 17 18 1
got=$(q -d $db -F ' ' -c "SELECT entries, overflow, (SELECT requests FROM datacore.metrics WHERE server = 'regress_full_1')
                           FROM datacore.metrics_info()")
[[ $got == "16 6 2" ]] || fail "entries, overflow, requests of regress_full_1 = $got (expected 16 6 2)"
grep -q '^datacore_metrics_overflow_total 6$' <(q -d $db -c "SELECT datacore.metrics_prometheus()") ||
    fail "exposition lacks datacore_metrics_overflow_total 6"

# one session across a reset: it remembers slot 0 for regress_full_1; after
# the reset regress_full_2 takes slot 0, and regress_full_1 must get a slot
# of its own
got=$(q -d $db <<'SQL'
SELECT datacore.reset_metrics();
DO $$ BEGIN PERFORM datacore.ollama_version('regress_full_1'); EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT datacore.reset_metrics();
DO $$ BEGIN PERFORM datacore.ollama_version('regress_full_2'); EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN PERFORM datacore.ollama_version('regress_full_1'); EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN PERFORM datacore.ollama_version('regress_full_1'); EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT string_agg(server || ':' || requests, ' ' ORDER BY server) FROM datacore.metrics;
SQL
)
got=$(tail -n 1 <<<"$got")
[[ $got == "regress_full_1:2 regress_full_2:1" ]] || fail "after a reset in the same session: $got"
echo "ok: 16 keys counted, 6 recordings overflowed, reset frees the table and keeps keys apart"
