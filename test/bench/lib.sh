# Shared by the benchmarks in test/bench/*/run.sh. Source it from the repo root.

# bench_install: build and install this tree, start the stack and restart its
# PostgreSQL so the fresh datacore.so is loaded, then export the stack's
# environment. Run the benchmark under the shared lock:
#   flock /tmp/datacore-check.lock test/bench/NAME/run.sh
bench_install() {
    local services=${DC_SERVICES:-test/services}
    make -s >/dev/null && make -s install >/dev/null
    "$services" start >/dev/null 2>&1 && "$services" restart postgres >/dev/null 2>&1
    eval "$("$services" env)"
}

# median of the numbers on stdin (one a line)
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# ---------------------------------------------------------------------
# The fast stub (test/bench/stub/nginx.conf.in): Debian's nginx with canned
# replies, for benchmarks that measure the client's own cost.  Loopback
# only, on DC_BENCH_STUB_PORT (default 58180); its own prefix, pid file and
# logs in a scratch directory, so a system nginx (service or not) neither
# matters nor is touched.
#   stub_start            sets STUB_URL (http://127.0.0.1:PORT)
#   stub_stop             (also run on exit when stub_start set the trap)

# Install nginx-light when missing, without letting the package start its
# own service on port 80 (policy-rc.d answers "not allowed" meanwhile).
stub_install() {
    command -v nginx >/dev/null && return 0
    local policy=/usr/sbin/policy-rc.d made=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light >/dev/null
    [[ $made ]] && rm -f "$policy"
    command -v nginx >/dev/null
}

stub_start() {
    local port=${DC_BENCH_STUB_PORT:-58180} i
    stub_install
    STUB_DIR=$(mktemp -d /tmp/dc-bench-stub.XXXXXX)
    chmod 755 "$STUB_DIR"    # workers run as an unprivileged user
    sed -e "s|@DIR@|$STUB_DIR|g" -e "s|@PORT@|$port|g" test/bench/stub/nginx.conf.in >"$STUB_DIR/nginx.conf"
    nginx -q -e "$STUB_DIR/error.log" -p "$STUB_DIR" -c "$STUB_DIR/nginx.conf"
    STUB_URL="http://127.0.0.1:$port"
    for ((i = 0; i < 50; i++)); do
        curl -sf -o /dev/null -X POST "$STUB_URL/api/generate" && return 0
        sleep 0.1
    done
    echo "stub: nginx did not answer on $STUB_URL" >&2
    cat "$STUB_DIR/error.log" >&2
    return 1
}

stub_stop() {
    [[ -n ${STUB_DIR:-} ]] || return 0
    if [[ -s $STUB_DIR/nginx.pid ]]; then
        kill "$(cat "$STUB_DIR/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 20); do [[ -e $STUB_DIR/nginx.pid ]] || break; sleep 0.05; done
    fi
    rm -rf "$STUB_DIR"
    STUB_DIR=
}

# bench_result MEASURE OURS REFERENCE RATIO: the line test/bench/report.sh
# turns into a row of docs/performance.md (tab-separated, "RESULT" first).
bench_result() { printf 'RESULT\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
