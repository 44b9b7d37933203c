#!/bin/bash
# The real monitoring stack: Debian's prometheus-postgres-exporter with the
# shipped docs/monitoring/queries.yaml, and Debian's prometheus scraping it
# with the shipped scrape configuration and alert rules (1 s interval, own
# loopback ports, started and stopped here).  After some Ollama calls, a
# PromQL query through Prometheus's HTTP API returns datacore_requests_total
# for server "ollama" with the value datacore.metrics shows; an open breaker
# shows in datacore_breaker_open and makes DatacoreBreakerOpen pending; the
# exposition of datacore.metrics_prometheus() passes promtool check metrics.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
eval "$(test/services env)"
export PGOPTIONS="-c client_min_messages=warning"
# below the ephemeral port range, so no outgoing connection holds them
: "${DC_EXPORTER_PORT:=19187}" "${DC_PROMETHEUS_PORT:=19090}"
db=regress_metrics_stack
role=regress_metrics_exporter

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.log; do [[ -f $f ]] && { echo "--- $f"; tail -n 20 "$f"; }; done
    exit 1
}

for cmd in prometheus promtool prometheus-postgres-exporter jq curl; do
    command -v "$cmd" >/dev/null || fail "$cmd is not installed (test/deps installs it)"
done
for port in "$DC_EXPORTER_PORT" "$DC_PROMETHEUS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port is taken; set DC_EXPORTER_PORT / DC_PROMETHEUS_PORT"
    fi
done

tmp=$(mktemp -d /tmp/datacore-metrics-stack.XXXXXX)
exporter_pid= prometheus_pid=
cleanup() {
    local pid
    for pid in $prometheus_pid $exporter_pid; do
        kill "$pid" 2>/dev/null || continue
        wait "$pid" 2>/dev/null || true
    done
    q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    q -d postgres -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "DROP ROLE IF EXISTS $role" >/dev/null
q -d postgres -c "CREATE DATABASE $db" >/dev/null
q -d $db >/dev/null <<SQL
CREATE EXTENSION datacore;
CREATE SERVER ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$DC_OLLAMA_PORT', model 'llama3.2', embedding_model 'nomic-embed-text');
CREATE SERVER regress_metrics_down FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:1', breaker_threshold '1', breaker_cooldown_ms '600000');
CREATE ROLE $role LOGIN IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA datacore TO $role;
SELECT datacore.reset_metrics();
SELECT datacore.ollama_generate('call ' || i) FROM generate_series(1, 7) i;
SELECT datacore.ollama_embed('one text');
SQL
q -d $db -c "SELECT datacore.ollama_version('regress_metrics_down')" >/dev/null 2>&1 &&
    fail "a call to a closed port succeeded"

# the exposition, as the monitoring role reads it
q -d $db -U $role -c "SELECT datacore.metrics_prometheus()" >"$tmp/exposition.txt"
promtool check metrics <"$tmp/exposition.txt" >"$tmp/promtool.log" 2>&1 ||
    fail "promtool check metrics: $(cat "$tmp/promtool.log")"
grep -q "^datacore_requests_total{database=\"$db\",server=\"ollama\",service=\"ollama\",operation=\"ollama_generate\"} 7$" \
    "$tmp/exposition.txt" || fail "exposition lacks datacore_requests_total 7 for ollama_generate"
promtool check rules docs/monitoring/alerts.yml >"$tmp/rules.log" 2>&1 ||
    fail "promtool check rules: $(cat "$tmp/rules.log")"

# postgres_exporter with the shipped queries file
DATA_SOURCE_NAME="host=127.0.0.1 port=$PGPORT user=$role dbname=$db sslmode=disable" \
    prometheus-postgres-exporter --web.listen-address="127.0.0.1:$DC_EXPORTER_PORT" \
    --extend.query-path="$root/docs/monitoring/queries.yaml" --log.level=warn \
    >"$tmp/exporter.log" 2>&1 &
exporter_pid=$!

# prometheus with the shipped scrape configuration, pointed at it
sed -e "s/'datacore:9187'/'127.0.0.1:$DC_EXPORTER_PORT'/" \
    -e 's/scrape_interval: 15s/scrape_interval: 1s/' \
    -e 's/evaluation_interval: 15s/evaluation_interval: 1s/' \
    -e "s#- alerts.yml#- $root/docs/monitoring/alerts.yml#" \
    docs/monitoring/prometheus.yml >"$tmp/prometheus.yml"
grep -q "127.0.0.1:$DC_EXPORTER_PORT" "$tmp/prometheus.yml" || fail "scrape target not rewritten"
promtool check config "$tmp/prometheus.yml" >"$tmp/config.log" 2>&1 ||
    fail "promtool check config: $(cat "$tmp/config.log")"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
    --web.listen-address="127.0.0.1:$DC_PROMETHEUS_PORT" --log.level=warn \
    >"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!

promql() {
    curl -sf --get "http://127.0.0.1:$DC_PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=$1"
}

# wait for a scrape that carries the sample (up to 30 s)
sel="datacore_requests_total{job=\"datacore-postgres\",database=\"$db\",server=\"ollama\",operation=\"ollama_generate\"}"
got=
for _ in $(seq 1 60); do
    got=$(promql "$sel" 2>/dev/null | jq -r '.data.result[0].value[1] // empty' 2>/dev/null) || got=
    [[ -n $got ]] && break
    kill -0 "$exporter_pid" 2>/dev/null || fail "postgres_exporter exited"
    kill -0 "$prometheus_pid" 2>/dev/null || fail "prometheus exited"
    sleep 0.5
done
[[ -n $got ]] || fail "no $sel in Prometheus after 30 s"
want=$(q -d $db -c "SELECT requests FROM datacore.metrics
                     WHERE database = '$db' AND server = 'ollama' AND operation = 'ollama_generate'")
[[ $got == "$want" && $want == 7 ]] || fail "Prometheus has $got, datacore.metrics has $want (expected 7)"
echo "ok: PromQL datacore_requests_total for ollama_generate = $got = datacore.metrics"

# every operation of server ollama, summed on both sides
got=$(promql "sum(datacore_requests_total{database=\"$db\",server=\"ollama\"})" | jq -r '.data.result[0].value[1]')
want=$(q -d $db -c "SELECT sum(requests) FROM datacore.metrics WHERE database = '$db' AND server = 'ollama'")
[[ $got == "$want" ]] || fail "sum over server ollama: Prometheus $got, datacore.metrics $want"

# labels as datacore.metrics_prometheus() has them: the exporter's own
# "server" moved to postgres_server, no foreign_server left
labels=$(promql "$sel" | jq -r '.data.result[0].metric | keys | join(",")')
[[ $labels == *postgres_server* && $labels != *foreign_server* ]] || fail "labels after relabelling: $labels"

# histogram, errors and the breaker, through PromQL
got=$(promql "sum(datacore_request_duration_seconds_count{database=\"$db\",server=\"ollama\"})" | jq -r '.data.result[0].value[1]')
want=$(q -d $db -c "SELECT sum(latency_count) FROM datacore.metrics WHERE database = '$db' AND server = 'ollama'")
[[ $got == "$want" ]] || fail "histogram count: Prometheus $got, datacore.metrics $want"
got=$(promql "datacore_request_duration_seconds_bucket{database=\"$db\",operation=\"ollama_generate\",le=\"+Inf\"}" | jq -r '.data.result[0].value[1]')
[[ $got == 7 ]] || fail "+Inf bucket of ollama_generate is $got"
got=$(promql "datacore_errors_total{database=\"$db\",server=\"regress_metrics_down\",class=\"08\"}" | jq -r '.data.result[0].value[1]')
[[ $got == 1 ]] || fail "datacore_errors_total class 08 for regress_metrics_down is $got"
got=$(promql "datacore_breaker_open{database=\"$db\",server=\"regress_metrics_down\"}" | jq -r '.data.result[0].value[1]')
[[ $got == 1 ]] || fail "datacore_breaker_open for regress_metrics_down is $got"
got=$(promql "datacore_breaker_open{database=\"$db\",server=\"ollama\"}" | jq -r '.data.result[0].value[1]')
[[ $got == 0 ]] || fail "datacore_breaker_open for ollama is $got"

# the alert rules load and the breaker alert goes pending on real data
rules=$(curl -sf "http://127.0.0.1:$DC_PROMETHEUS_PORT/api/v1/rules" |
        jq -r '[.data.groups[].rules[] | select(.health == "ok" or .health == "unknown")] | length')
[[ $rules == 4 ]] || fail "expected 4 healthy alert rules, got $rules"
state=
for _ in $(seq 1 20); do
    state=$(curl -sf "http://127.0.0.1:$DC_PROMETHEUS_PORT/api/v1/alerts" |
            jq -r --arg s regress_metrics_down \
               '[.data.alerts[] | select(.labels.alertname == "DatacoreBreakerOpen" and .labels.server == $s) | .state][0] // empty')
    [[ -n $state ]] && break
    sleep 0.5
done
[[ $state == pending || $state == firing ]] || fail "DatacoreBreakerOpen for regress_metrics_down: '${state}'"

grep -i 'level=error' "$tmp/exporter.log" && fail "postgres_exporter logged errors"
echo "ok: exporter, Prometheus and alert rules agree with datacore.metrics"
