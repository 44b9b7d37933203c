#!/bin/bash
# S3 record splitter benchmark: a JSON Lines object whose records are far
# longer than one read (256 kB) — one record of SIZE_MB, and the same bytes
# as 1 kB records for comparison — read through a foreign table with
# format 'jsonl'. A splitter that rescans its buffer after every read is
# quadratic in the record length; one with a scan cursor is linear.
#
#   test/bench/s3/records.sh [runs] [size_mb]   (default 5, 32; run under the check lock)
#
# Uses the datacore installed on the local stack (test/services start).
# Prints the median seconds of each scan. Measured on the test stack (3 runs,
# 32 MiB): one long record 2.02 s with the splitter that rescanned its buffer
# after each read, 0.49 s with the scan cursor; 1 kB records 0.35 s / 0.38 s.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
RUNS=${1:-5}
SIZE_MB=${2:-32}
SERVICES=${DC_SERVICES:-test/services}
eval "$("$SERVICES" env)"
URL=http://127.0.0.1:$DC_S3_PORT

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS dc_s3_bench" -c "CREATE DATABASE dc_s3_bench"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS dc_s3_bench" >/dev/null 2>&1 || true' EXIT
psqlq() { psql -X -q -At -d dc_s3_bench -v ON_ERROR_STOP=1 "$@"; }

psqlq <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS datacore;
CREATE SERVER bench_minio FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url '$URL', region '$DC_S3_REGION');
CREATE USER MAPPING FOR PUBLIC SERVER bench_minio OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
DO \$\$ BEGIN PERFORM datacore.s3_create_bucket('dc-bench-rec', 'bench_minio');
EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
SELECT length(datacore.s3_put('dc-bench-rec', 'long/one.jsonl',
	format('{"id": 1, "pad": "%s"}', repeat('x', $SIZE_MB * 1048576)), NULL, 'bench_minio')) > 0;
SELECT length(datacore.s3_put('dc-bench-rec', 'short/many.jsonl',
	(SELECT string_agg(format('{"id": %s, "pad": "%s"}', g, repeat('x', 1000)), E'\n')
	 FROM generate_series(1, $SIZE_MB * 1048576 / 1020) g), NULL, 'bench_minio')) > 0;
CREATE FOREIGN TABLE long_rec (id int, pad text)
	SERVER bench_minio OPTIONS (bucket 'dc-bench-rec', prefix 'long/', format 'jsonl');
CREATE FOREIGN TABLE short_rec (id int, pad text)
	SERVER bench_minio OPTIONS (bucket 'dc-bench-rec', prefix 'short/', format 'jsonl');
SQL

# seconds for one scan of table $1
scan() {
	psqlq -c "SET client_min_messages = notice" -c "DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); n bigint;
BEGIN SELECT sum(length(pad)) INTO n FROM $1;
RAISE NOTICE 'secs=%', extract(epoch FROM clock_timestamp() - t0); END \$\$" 2>&1 | sed -n 's/.*secs=//p'
}

for t in long_rec short_rec; do
	for _ in $(seq "$RUNS"); do scan $t; done | median | xargs printf "%-10s %3d MiB  median %.3f s\n" $t "$SIZE_MB"
done

psqlq -c "SELECT datacore.s3_delete('dc-bench-rec', key, 'bench_minio') FROM datacore.s3_list('dc-bench-rec', '', 'bench_minio')" >/dev/null
psqlq -c "SELECT datacore.s3_delete_bucket('dc-bench-rec', 'bench_minio')" >/dev/null
