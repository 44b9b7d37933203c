#!/bin/bash
# 1,000 jobs enqueued while the Ollama server answers 503 (Retry-After: 1)
# all complete once it is back: none dead, none sent twice once it answered.
# Its breaker (threshold 3) opens after the first failures; the jobs behind
# it then wait without spending attempts, so the request log holds exactly
# one request per attempt and far fewer attempts than jobs x 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS_SERVER_OPTIONS=", breaker_threshold '3', breaker_cooldown_ms '300'"
source test/t/lib/jobs.sh
trap jobs_cleanup EXIT
jobs_setup

ollama_fault POST '{"mode": "status", "status": 503, "retry_after": 1, "path": "/api/generate"}'
q -c "SELECT count(datacore.ollama_generate_async('job ' || i)) FROM generate_series(1, 1000) i" >/dev/null
wait_for "SELECT count(*) > 0 FROM datacore.breaker_status() WHERE server = 'ollama' AND state = 'open'" 20
sleep 1
check "nothing succeeded while the server was down" "0" \
    "$(q -c "SELECT count(*) FROM datacore.jobs WHERE state = 'succeeded'")"
down_attempts=$(q -c "SELECT sum(attempts) FROM datacore.jobs")
ollama_fault DELETE

wait_for "SELECT count(*) = 1000 FROM datacore.jobs WHERE state IN ('succeeded', 'failed', 'dead')" 40
check "all 1000 succeeded" "1000" "$(q -c "SELECT count(*) FROM datacore.jobs WHERE state = 'succeeded'")"
check "none dead" "0" "$(q -c "SELECT count(*) FROM datacore.jobs WHERE state = 'dead'")"

log=$(ollama_log | jq -c 'select(.path == "/api/generate") | .body.prompt')
attempts=$(q -c "SELECT sum(attempts) FROM datacore.jobs")
check "one request per attempt" "$attempts" "$(wc -l <<<"$log")"
check "every job reached the server" "1000" "$(sort -u <<<"$log" | wc -l)"
retried=$(q -c "SELECT count(*) FROM datacore.jobs WHERE attempts > 1")
check "every retry followed a connection-class error (503)" "0" \
    "$(q -c "SELECT count(*) FROM datacore.jobs WHERE attempts > 1 AND last_error->>'sqlstate' <> '08006'")"
echo "info: $down_attempts attempts while down, $attempts in all, $retried jobs retried"
if (( attempts < 1100 )); then
    echo "ok: jobs behind the open breaker waited without spending attempts"
else
    echo "FAIL: $attempts attempts for 1000 jobs: jobs behind the open breaker spent attempts"; failed=1
fi
exit $failed
