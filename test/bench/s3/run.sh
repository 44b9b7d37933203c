#!/bin/bash
# S3 benchmark: PUT and GET of a 64 MiB object through datacore.s3_put /
# s3_get versus curl --aws-sigv4 (with an explicit x-amz-content-sha256, as
# curl 7.88 does not add one) against the same S3 front, side by side in
# one run; then the backend's peak memory for the 64 MiB upload.
#
#   test/bench/s3/run.sh [runs]        (default 5; run under the check lock)
#
# Builds and installs this tree and restarts the stack's PostgreSQL.
# Prints medians in MiB/s and the datacore/curl ratios.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source test/bench/lib.sh
RUNS=${1:-5}
SIZE_MB=64
bench_install

WORK=$(mktemp -d /tmp/dc-s3-bench.XXXXXX)
chmod 755 "$WORK"
stub_start
trap 'stub_stop; rm -rf "$WORK"' EXIT
BODY=$WORK/body.bin
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$BODY"
chmod 644 "$BODY"
URL=http://127.0.0.1:$DC_S3_PORT
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# a database of its own: the shared stack's other databases may hold
# another build's extension script
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS dc_s3_bench" -c "CREATE DATABASE dc_s3_bench"
psqlq() { psql -X -q -At -d dc_s3_bench -v ON_ERROR_STOP=1 "$@"; }

# servers: bench_minio (defaults: multipart above 16 MiB, 8 MiB parts, 4
# in flight), bench_serial (one part at a time) and bench_single (one PUT
# for the whole body)
psqlq <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS bench_minio, bench_serial, bench_single, stub_multi, stub_serial CASCADE;
CREATE SERVER bench_minio FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url '$URL', region '$DC_S3_REGION');
CREATE SERVER bench_serial FOREIGN DATA WRAPPER datacore_s3
	OPTIONS (url '$URL', region '$DC_S3_REGION', parallel_parts '1');
CREATE SERVER bench_single FOREIGN DATA WRAPPER datacore_s3
	OPTIONS (url '$URL', region '$DC_S3_REGION', multipart_threshold '1073741824');
CREATE USER MAPPING FOR PUBLIC SERVER bench_minio OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
CREATE USER MAPPING FOR PUBLIC SERVER bench_serial OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
CREATE SERVER stub_multi FOREIGN DATA WRAPPER datacore_s3 OPTIONS (url '$STUB_URL', region '$DC_S3_REGION');
CREATE SERVER stub_serial FOREIGN DATA WRAPPER datacore_s3
	OPTIONS (url '$STUB_URL', region '$DC_S3_REGION', parallel_parts '1');
CREATE USER MAPPING FOR PUBLIC SERVER stub_multi OPTIONS (access_key_id 'bench', secret_access_key 'bench');
CREATE USER MAPPING FOR PUBLIC SERVER stub_serial OPTIONS (access_key_id 'bench', secret_access_key 'bench');
CREATE USER MAPPING FOR PUBLIC SERVER bench_single OPTIONS (access_key_id '$DC_S3_ACCESS_KEY', secret_access_key '$DC_S3_SECRET_KEY');
DO \$\$ BEGIN PERFORM datacore.s3_create_bucket('dc-bench', 'bench_minio');
EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
SQL

# seconds for one datacore call; the body is read before the clock starts
dc_put() {
	psqlq -c "SET client_min_messages = notice" -c "DO \$\$
DECLARE b bytea := pg_read_binary_file('$BODY'); t0 timestamptz;
BEGIN t0 := clock_timestamp(); PERFORM datacore.s3_put('dc-bench', 'dc-obj', b, NULL, '$1');
RAISE NOTICE 'secs=%', extract(epoch FROM clock_timestamp() - t0); END \$\$" 2>&1 | sed -n 's/.*secs=//p'
}
dc_get() {
	psqlq -c "SET client_min_messages = notice" -c "DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); n int;
BEGIN n := length(datacore.s3_get('dc-bench', 'dc-obj', 'bench_minio'));
IF n <> $SIZE_MB * 1048576 THEN RAISE EXCEPTION 'got % bytes', n; END IF;
RAISE NOTICE 'secs=%', extract(epoch FROM clock_timestamp() - t0); END \$\$" 2>&1 | sed -n 's/.*secs=//p'
}
# curl: hashing the body is part of a signed upload, so it is timed too
curl_put() {
	local t0 t1 sha
	t0=$(date +%s.%N)
	sha=$(sha256sum "$BODY" | cut -d' ' -f1)
	curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:$DC_S3_REGION:s3" --user "$DC_S3_ACCESS_KEY:$DC_S3_SECRET_KEY" \
		-H "x-amz-content-sha256: $sha" -T "$BODY" "$URL/dc-bench/curl-obj"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
# the same upload to the nginx stub, which drops the body: the client's cost
curl_put_stub() {
	local t0 t1 sha
	t0=$(date +%s.%N)
	sha=$(sha256sum "$BODY" | cut -d' ' -f1)
	curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:$DC_S3_REGION:s3" --user bench:bench \
		-H "x-amz-content-sha256: $sha" -T "$BODY" "$STUB_URL/dc-bench/curl-obj"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
curl_get() {
	curl -sS -f -o /dev/null -w '%{time_total}\n' --aws-sigv4 "aws:amz:$DC_S3_REGION:s3" \
		--user "$DC_S3_ACCESS_KEY:$DC_S3_SECRET_KEY" -H "x-amz-content-sha256: $EMPTY_SHA" \
		"$URL/dc-bench/curl-obj"
}

# the same, but the body lands in a file, as a GET into a value lands in memory
curl_get_file() {
	curl -sS -f -o "$WORK/out.bin" -w '%{time_total}\n' --aws-sigv4 "aws:amz:$DC_S3_REGION:s3" \
		--user "$DC_S3_ACCESS_KEY:$DC_S3_SECRET_KEY" -H "x-amz-content-sha256: $EMPTY_SHA" \
		"$URL/dc-bench/curl-obj"
	rm -f "$WORK/out.bin"
}


declare -A T
NAMES="dc_put_multi dc_put_serial dc_put_single curl_put dc_get curl_get curl_get_file stub_put_multi stub_put_serial stub_curl_put"
for name in $NAMES; do T[$name]=""; done
dc_put bench_minio >/dev/null; curl_put >/dev/null	# warm-up
for ((i = 1; i <= RUNS; i++)); do
	T[dc_put_multi]+="$(dc_put bench_minio)"$'\n'
	T[dc_put_serial]+="$(dc_put bench_serial)"$'\n'
	T[dc_put_single]+="$(dc_put bench_single)"$'\n'
	T[curl_put]+="$(curl_put)"$'\n'
	T[dc_get]+="$(dc_get)"$'\n'
	T[curl_get]+="$(curl_get)"$'\n'
	T[curl_get_file]+="$(curl_get_file)"$'\n'
	T[stub_put_multi]+="$(dc_put stub_multi)"$'\n'
	T[stub_put_serial]+="$(dc_put stub_serial)"$'\n'
	T[stub_curl_put]+="$(curl_put_stub)"$'\n'
done

mbps() { echo "$SIZE_MB / $1" | bc -l; }
printf '%-34s %10s %10s\n' "64 MiB object, median of $RUNS" "seconds" "MiB/s"
declare -A M
for name in $NAMES; do
	M[$name]=$(printf '%s' "${T[$name]}" | grep -v '^$' | median)
	printf '%-34s %10.3f %10.1f\n' "$name" "${M[$name]}" "$(mbps "${M[$name]}")"
done
printf 'ratio PUT  datacore multipart / curl   %.2fx  (goal >= 1.0)\n' "$(echo "${M[curl_put]} / ${M[dc_put_multi]}" | bc -l)"
printf 'ratio PUT  datacore serial parts / curl %.2fx\n' "$(echo "${M[curl_put]} / ${M[dc_put_serial]}" | bc -l)"
printf 'ratio PUT  datacore single PUT / curl  %.2fx\n' "$(echo "${M[curl_put]} / ${M[dc_put_single]}" | bc -l)"
printf 'ratio GET  datacore / curl -o /dev/null %.2fx\n' "$(echo "${M[curl_get]} / ${M[dc_get]}" | bc -l)"
printf 'ratio GET  datacore / curl -o file     %.2fx\n' "$(echo "${M[curl_get_file]} / ${M[dc_get]}" | bc -l)"
printf 'ratio PUT  to the stub: multipart / curl %.2fx, serial parts / curl %.2fx\n' \
	"$(echo "${M[stub_curl_put]} / ${M[stub_put_multi]}" | bc -l)" "$(echo "${M[stub_curl_put]} / ${M[stub_put_serial]}" | bc -l)"
r() { printf '%.2f' "$(echo "$1" | bc -l)"; }
bench_result "S3 PUT 64 MiB, multipart (4 parts in flight), MiB/s, vs one curl --aws-sigv4 stream (goal >= 1.0)" \
    "$(r "$SIZE_MB / ${M[dc_put_multi]}")" "$(r "$SIZE_MB / ${M[curl_put]}")" "$(r "${M[curl_put]} / ${M[dc_put_multi]}")"
bench_result "S3 PUT 64 MiB, multipart one part at a time, MiB/s, vs curl" \
    "$(r "$SIZE_MB / ${M[dc_put_serial]}")" "$(r "$SIZE_MB / ${M[curl_put]}")" "$(r "${M[curl_put]} / ${M[dc_put_serial]}")"
bench_result "S3 PUT 64 MiB to the nginx stub (client cost), multipart 4 in flight, MiB/s, vs curl" \
    "$(r "$SIZE_MB / ${M[stub_put_multi]}")" "$(r "$SIZE_MB / ${M[stub_curl_put]}")" "$(r "${M[stub_curl_put]} / ${M[stub_put_multi]}")"
bench_result "S3 GET 64 MiB into a value, MiB/s, vs curl -o file" \
    "$(r "$SIZE_MB / ${M[dc_get]}")" "$(r "$SIZE_MB / ${M[curl_get_file]}")" "$(r "${M[curl_get_file]} / ${M[dc_get]}")"

# Peak memory of a fresh backend for one 64 MiB upload (VmHWM, minus the
# same backend's high-water mark before the call).  The 64 MiB body read
# by pg_read_binary_file is included: it is the argument itself.
for srv in bench_minio bench_serial bench_single; do
	psqlq <<SQL
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint AS before \gset
SELECT length(datacore.s3_put('dc-bench', 'mem-obj', pg_read_binary_file('$BODY'), NULL, '$srv')) > 0 AS put \gset
SELECT format('peak backend memory, 64 MiB upload via %-12s +%s MiB (%s x body)', '$srv',
	round(((regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint - :before) / 1024.0, 1),
	round(((regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint - :before) / 1024.0 / $SIZE_MB, 2));
SQL
done
psqlq <<SQL
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint AS before \gset
SELECT length(datacore.s3_get('dc-bench', 'mem-obj', 'bench_minio')) > 0 AS got \gset
SELECT format('peak backend memory, 64 MiB download       +%s MiB (%s x body)',
	round(((regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint - :before) / 1024.0, 1),
	round(((regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint - :before) / 1024.0 / $SIZE_MB, 2));
SQL

psqlq <<SQL >/dev/null
SET client_min_messages = warning;
SELECT datacore.s3_delete('dc-bench', k, 'bench_minio') FROM unnest(ARRAY['dc-obj', 'curl-obj', 'mem-obj']) k;
SELECT datacore.s3_delete_bucket('dc-bench', 'bench_minio');
DROP SERVER bench_minio, bench_serial, bench_single, stub_multi, stub_serial CASCADE;
SQL
psql -X -q -d postgres -c "DROP DATABASE dc_s3_bench"
