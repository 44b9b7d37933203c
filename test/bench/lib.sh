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
