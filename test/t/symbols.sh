#!/bin/bash
# datacore.so must not bind json_object: the postgres executable exports a
# function of that name which would win over jansson's at run time.
set -euo pipefail
cd "$(dirname "$0")/../.."
so=datacore.so
[[ -f $so ]] || { echo "FAIL: $so not built"; exit 1; }
if nm -D --undefined-only "$so" | awk '{print $2}' | grep -qx 'json_object\(@.*\)\?'; then
    echo "FAIL: $so references json_object"
    exit 1
fi
echo "ok: $so does not reference json_object"
