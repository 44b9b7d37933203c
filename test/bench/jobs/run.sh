#!/bin/bash
# Jobs benchmark: 10,000 s3_put_async of 1 KiB and 10,000 ollama_embed_async
# drained by the job worker, against an nginx stub that answers at once
# (canned S3 PUT and /api/embed replies), and 2,000 embeddings from a stub
# that takes 10 ms per answer, with the default job_concurrency (16 in
# flight) and with 1; then the same 10,000 puts done synchronously in one
# session, for the ratio.
#
#   flock /tmp/datacore-check.lock test/bench/jobs/run.sh [count]   (default 10000)
#
# Installs Debian's nginx-light when missing (root). Prints jobs/s.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
N=${1:-10000}
STUB_PORT=${DC_BENCH_STUB_PORT:-58080}

if ! command -v nginx >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
fi
bench_install

WORK=$(mktemp -d /tmp/dc-jobs-bench.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:$STUB_PORT;
        # a server that takes 10 ms per answer (echo module)
        location /slow/api/embed {
            default_type application/json;
            echo_sleep 0.01;
            echo '{"model":"nomic-embed-text","embeddings":[[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]]}';
        }
        location /api/embed {
            default_type application/json;
            return 200 '{"model":"nomic-embed-text","embeddings":[[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]]}';
        }
        location / {
            add_header ETag '"d41d8cd98f00b204e9800998ecf8427e"' always;
            return 200 '';
        }
    }
}
CONF
nginx -p "$WORK" -c "$WORK/nginx.conf"
trap 'nginx -p "$WORK" -c "$WORK/nginx.conf" -s stop 2>/dev/null || true; sleep 0.2; rm -rf "$WORK"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS dc_jobs_bench WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$STUB_PORT/" && break; sleep 0.1; done

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS dc_jobs_bench WITH (FORCE)" -c "CREATE DATABASE dc_jobs_bench"
psqlq() { psql -X -q -At -d dc_jobs_bench -v ON_ERROR_STOP=1 "$@"; }
psqlq <<SQL
SET client_min_messages = warning;
CREATE EXTENSION datacore;
CREATE SERVER stub_s3 FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url 'http://127.0.0.1:$STUB_PORT', region 'us-east-1');
CREATE USER MAPPING FOR PUBLIC SERVER stub_s3 OPTIONS (access_key_id 'bench', secret_access_key 'bench');
CREATE SERVER stub_ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$STUB_PORT', embedding_model 'nomic-embed-text');
CREATE SERVER slow_ollama FOREIGN DATA WRAPPER datacore_ollama
    OPTIONS (url 'http://127.0.0.1:$STUB_PORT/slow', embedding_model 'nomic-embed-text');
SQL

# drain KIND SQL: enqueue N jobs in one transaction, then time from its
# commit until the last job finished (finished_at, the worker's clock)
drain() {
    local label=$1 sql=$2 out
    psqlq -c "TRUNCATE datacore.jobs"
    out=$(psqlq <<SQL
\\timing off
SELECT clock_timestamp() AS t0 \\gset
SELECT count($sql) FROM generate_series(1, $N) i \\gset
SELECT clock_timestamp() AS t1 \\gset
SELECT extract(epoch FROM :'t1'::timestamptz - :'t0'::timestamptz);
SQL
)
    local enq=$out
    local i
    for i in $(seq 1200); do
        [[ $(psqlq -c "SELECT count(*) FROM datacore.jobs WHERE finished_at IS NULL") == 0 ]] && break
        sleep 0.05
    done
    psqlq -c "SELECT format('%s: %s jobs, enqueue %s/s, drained %s/s (%s s), states %s', '$label', count(*),
                  round($N / $enq), round(count(*) / extract(epoch FROM max(finished_at) - min(started_at))),
                  round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 2),
                  (SELECT string_agg(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM datacore.jobs GROUP BY 1) s))
              FROM datacore.jobs"
}

body=$(head -c 1024 /dev/zero | tr '\0' 'x')
put="datacore.s3_put_async('bench', 'obj-' || i, '$body', NULL, 'stub_s3')"
embed="datacore.ollama_embed_async('text ' || i, NULL, 'stub_ollama')"
slow="datacore.ollama_embed_async('text ' || i, NULL, 'slow_ollama')"
drain "s3_put_async 1 KiB" "$put"
drain "ollama_embed_async" "$embed"
N_SLOW=$((N / 5))
N=$N_SLOW drain "ollama_embed_async, 10 ms per answer" "$slow"

# the same with one request at a time; a worker reads the database's
# settings when it starts, and it leaves after 2 s without work
psqlq -c "ALTER DATABASE dc_jobs_bench SET datacore.job_concurrency = 1"
sleep 2.5
drain "s3_put_async 1 KiB, job_concurrency = 1" "$put"
drain "ollama_embed_async, job_concurrency = 1" "$embed"
N=$N_SLOW drain "ollama_embed_async, 10 ms per answer, job_concurrency = 1" "$slow"

sync=$(psqlq <<SQL
SELECT clock_timestamp() AS t0 \\gset
SELECT count(datacore.s3_put('bench', 'obj-' || i, '$body', NULL, 'stub_s3')) FROM generate_series(1, $N) i \\gset
SELECT round($N / extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));
SQL
)
echo "s3_put synchronous, one session: $sync puts/s"
