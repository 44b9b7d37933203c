#!/bin/bash
# Started by pg_ctl -p in place of postgres: the server under memcheck.
# DC_VALGRIND_DIR (exported by check.sh) holds one log per process.
exec valgrind --tool=memcheck --quiet --trace-children=yes \
    --trace-children-skip='*/sh,*/bash,*/curl,*/dash' \
    --child-silent-after-fork=no --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=30 --track-origins=no \
    --suppressions="$DC_VALGRIND_SUPP" --gen-suppressions=all \
    --log-file="$DC_VALGRIND_DIR/%p.log" \
    /usr/lib/postgresql/15/bin/postgres "$@"
