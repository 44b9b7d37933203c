#!/bin/bash
# Jobs whose kind supports it (embed, generate) are in flight together: with the stand-in
# holding every answer, all five embedding requests reach it before the
# first times out (one after another, the second would arrive only after
# the first request's 3 s timeout).  They then time out, are retried and
# succeed.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS_SERVER_OPTIONS=", embedding_model 'nomic-embed-text', timeout_ms '3000'"
source test/t/lib/jobs.sh
trap jobs_cleanup EXIT
jobs_setup

# arrived PATH: how many requests for PATH reached the (hung) stand-in within
# 1.5 s, well before the 3 s timeout, stopping at 5
arrived() {
    local n=0 deadline=$(( $(date +%s%N) + 1500000000 ))
    while (( $(date +%s%N) < deadline )); do
        n=$(ollama_log | jq -c "select(.path == \"$1\")" | wc -l)
        (( n >= 5 )) && break
        sleep 0.05
    done
    echo "$n"
}

ollama_fault POST '{"mode": "hang", "times": 5, "path": "/api/embed"}'
q -c "SELECT count(datacore.ollama_embed_async('text ' || i)) FROM generate_series(1, 5) i" >/dev/null
check "five requests in flight at once while none was answered" "5" "$(arrived /api/embed)"

wait_for "SELECT count(*) = 5 FROM datacore.jobs WHERE state = 'succeeded'" 30
check "all five succeeded after their timeouts" "5" \
    "$(q -c "SELECT count(*) FROM datacore.jobs WHERE attempts = 2 AND last_error->>'sqlstate' = '08006'")"

# generate jobs too
ollama_fault POST '{"mode": "hang", "times": 5, "path": "/api/generate"}'
q -c "SELECT count(datacore.ollama_generate_async('prompt ' || i)) FROM generate_series(1, 5) i" >/dev/null
check "five generate requests in flight at once" "5" "$(arrived /api/generate)"
wait_for "SELECT count(*) = 10 FROM datacore.jobs WHERE state = 'succeeded'" 30
check "the generated texts are the jobs' results" "5" \
    "$(q -c "SELECT count(*) FROM datacore.jobs WHERE kind = 'ollama_generate' AND result #>> '{}' LIKE '%prompt %'")"
exit $failed
