#!/bin/bash
# Lifts a fault from inside a psql session (\!), so the backend that saw
# the fault is the one that makes the next call.
#   lift.sh fault CONTROL_PORT            clear a stand-in's fault switch
#   lift.sh forward PORT TARGET PIDFILE   the "down" service comes back on PORT
set -euo pipefail
case $1 in
    fault)
        curl -sS --max-time 10 -X DELETE "http://127.0.0.1:$2/_test/fault" >/dev/null ;;
    forward)
        log=$4.log
        node "$(dirname "$0")/forward.js" "$2" "$3" >"$log" 2>&1 &
        echo $! >"$4"
        for _ in $(seq 100); do grep -q listening "$log" && exit 0; sleep 0.05; done
        echo "forwarder did not start" >&2; exit 1 ;;
esac
