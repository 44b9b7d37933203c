#!/bin/bash
# Every ```sql block of README.md and docs/*.md, run page by page against the
# local stack, as a reader would run it: each page in a database of its own,
# its blocks in order in one psql session, as the role the page says.  A
# block fails the test when it raises an error it was not marked to raise
# (docs/testing.md, "Documentation examples", has the markers and the
# endpoint rewriting).  Afterwards each page's databases, roles, buckets,
# Redis keys and Qdrant collections are removed.
#
#   bash test/t/docs_examples.sh [PAGE.md ...]     default: every page
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh
eval "$(test/services env)"

WORK=$(mktemp -d)
ADMIN_DB=dc_docs_admin
FAILED=0
redis_pid=
export PGDATABASE=postgres

cleanup() {
    [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null || true
    psql -X -q -c "DROP DATABASE IF EXISTS $ADMIN_DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Turn one markdown page into a psql script.  Markers (HTML comments, so
# they do not show on the rendered page) apply to the next sql block:
#   <!-- as: ROLE -->         this block and the following ones run connected
#                             as ROLE (as: postgres goes back to the superuser)
#   <!-- fails: SQLSTATE -->  the block must raise errors, all of this SQLSTATE
#   <!-- setup: SQL ... -->   SQL the page assumes, run at this point (may
#                             span lines up to "-->")
# Each block is bracketed by \warn lines, so the block an error belongs to
# can be read from psql's stderr.
extract() {
    awk -v page="$1" '
    function flush_block(want) {
        printf "\\warn @@block %s:%d %s\n", page, start, (want == "" ? "-" : want)
        if (role != "" && role != current_role) {
            printf "\\c - %s\n", role
            current_role = role
        }
        printf "%s;\n\\warn @@end\n", body
        body = ""
    }
    BEGIN { in_block = 0; in_setup = 0; expect = ""; role = ""; current_role = "postgres" }
    in_setup {
        if ($0 ~ /-->/) { sub(/-->.*/, ""); setup = setup $0 "\n"; in_setup = 0
            start = setup_line; body = setup; flush_block("") }
        else setup = setup $0 "\n"
        next
    }
    in_block {
        if ($0 ~ "^" indent "```[[:space:]]*$") { in_block = 0; flush_block(expect); expect = ""; next }
        line = $0
        if (substr(line, 1, length(indent)) == indent) line = substr(line, length(indent) + 1)
        body = body line "\n"
        next
    }
    /^[[:space:]]*<!-- *as: *[A-Za-z_][A-Za-z0-9_]* *-->/ {
        r = $0; sub(/.*as: */, "", r); sub(/ *-->.*/, "", r); role = r; next
    }
    /^[[:space:]]*<!-- *fails: *[0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z] *-->/ {
        e = $0; sub(/.*fails: */, "", e); sub(/ *-->.*/, "", e); expect = e; next
    }
    /^[[:space:]]*<!-- *setup:/ {
        s = $0; sub(/.*setup: */, "", s); setup_line = NR
        if (s ~ /-->/) { sub(/-->.*/, "", s); start = NR; body = s "\n"; flush_block("") }
        else { setup = s "\n"; in_setup = 1 }
        next
    }
    /^[[:space:]]*```sql[[:space:]]*$/ {
        indent = $0; sub(/```sql.*/, "", indent)
        in_block = 1; start = NR + 1; body = ""
        next
    }
    ' "$1"
}

# The pages show the ports and credentials of a default installation; the
# stack listens elsewhere.  Rewrite them, and nothing else.
rewrite() {
    sed -e "s#http://127\.0\.0\.1:11434#http://127.0.0.1:$DC_OLLAMA_PORT#g" \
        -e "s#http://ainode:11434#http://127.0.0.1:$DC_OLLAMA_PORT#g" \
        -e "s#http://127\.0\.0\.1:6333#http://127.0.0.1:$DC_QDRANT_PORT#g" \
        -e "s#http://127\.0\.0\.1:9000#http://127.0.0.1:$DC_S3_PORT#g" \
        -e "s#port '6379'#port '$DC_REDIS_PORT'#g" \
        -e "s#access_key_id 'minioadmin'#access_key_id '$DC_S3_ACCESS_KEY'#g" \
        -e "s#secret_access_key 'minioadmin'#secret_access_key '$DC_S3_SECRET_KEY'#g" \
        -e "s#user 'app', password 'secret'#user '$DC_REDIS_USER', password '$DC_REDIS_PASSWORD'#g"
}

admin() {
    psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$ADMIN_DB" "$@"
}

# What a page may leave behind on the services, listed before and after it.
snapshot() {
    {
        admin -c "SELECT 'qdrant ' || c FROM datacore.qdrant_collections() c"
        curl -sS -f --aws-sigv4 "aws:amz:$DC_S3_REGION:s3" --user "$DC_S3_ACCESS_KEY:$DC_S3_SECRET_KEY" \
            -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
            "http://127.0.0.1:$DC_S3_PORT/" | { grep -o '<Name>[^<]*</Name>' || true; } |
            sed 's#<Name>\(.*\)</Name>#s3 \1#'
        REDISCLI_AUTH=$DC_REDIS_PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 -p "$DC_REDIS_PORT" \
            --user "$DC_REDIS_USER" --scan | sed 's/^/redis /'
        psql -X -A -t -c "SELECT 'role ' || rolname FROM pg_roles"
    } | sort
}

remove_new() {
    local kind name
    comm -13 "$1" "$2" | while read -r kind name; do
        case $kind in
            qdrant) admin -c "SELECT datacore.qdrant_drop_collection('$name', if_exists => true)" >/dev/null ;;
            s3)     admin -c "SELECT dc_test.s3_drop_bucket('$name')" >/dev/null ;;
            redis)  REDISCLI_AUTH=$DC_REDIS_PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 \
                        -p "$DC_REDIS_PORT" --user "$DC_REDIS_USER" DEL "$name" >/dev/null ;;
            role)   psql -X -q -c "DROP ROLE \"$name\"" ;;
        esac
    done
}

# Check psql's stderr block by block: a block without a marker must raise
# nothing; a "fails" block must raise at least one error, all of its SQLSTATE.
judge() {
    awk '
    /^@@block / { where = $2; expect = $3; n = 0; bad = ""; text = ""; next }
    /^@@end/ {
        if (expect == "-" && n > 0) { printf "FAIL %s: unexpected error\n%s", where, text; failed++ }
        else if (expect != "-" && n == 0) { printf "FAIL %s: no error, expected %s\n", where, expect; failed++ }
        else if (expect != "-" && bad != "") { printf "FAIL %s: expected %s, got%s\n%s", where, expect, bad, text; failed++ }
        else blocks++
        next
    }
    / (ERROR|FATAL): +[0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z]: / || /: error: / {
        code = $0
        if (match(code, /(ERROR|FATAL): +[0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z]:/)) {
            code = substr(code, RSTART, RLENGTH); sub(/.*: +/, "", code); sub(/:$/, "", code)
        } else code = "psql"
        n++
        if (code != expect) bad = bad " " code
    }
    /^LOCATION: / { next }
    { text = text "    " $0 "\n" }
    END { printf "%d blocks ok\n", blocks; exit failed > 0 }
    ' "$1"
}

run_page() {
    local page=$1 name db script before after
    name=$(basename "$page" .md | tr 'A-Z.-' 'a-z__')
    db=dc_docs_$name
    script=$WORK/$name.sql
    { printf '\\set VERBOSITY verbose\n\\set SHOW_CONTEXT never\n\\pset pager off\n'
      extract "$page"; } | rewrite >"$script"
    grep -q '^\\warn @@block' "$script" || return 0

    snapshot >"$WORK/$name.before"
    PGOPTIONS=-cclient_min_messages=warning psql -X -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    psql -X -d "$db" -f "$script" >"$WORK/$name.out" 2>"$WORK/$name.err" || true
    if judge "$WORK/$name.err" >"$WORK/$name.result"; then
        printf 'ok    %-26s %s\n' "$page" "$(tail -n 1 "$WORK/$name.result")"
    else
        printf 'FAIL  %s\n' "$page"
        sed '$d' "$WORK/$name.result"
        FAILED=$((FAILED + 1))
    fi
    psql -X -q -c "DROP DATABASE $db WITH (FORCE)"
    snapshot >"$WORK/$name.after"
    remove_new "$WORK/$name.before" "$WORK/$name.after"
}

# The admin database reaches the services with the stack's servers and the
# dc_test helpers, for listing and removing what the pages made.
PGOPTIONS=-cclient_min_messages=warning psql -X -q -c "DROP DATABASE IF EXISTS $ADMIN_DB" -c "CREATE DATABASE $ADMIN_DB"
admin -f test/regress/setup.psql >/dev/null

# The AeroVista demo as run-demo runs it (docs/examples/demo-chain), but
# against a Redis that has only "requirepass": the demo must work with the
# default user, without an ACL user of its own.
run_demo() {
    local port=$((DC_REDIS_PORT + 17)) pw=docs-requirepass-pw before=$WORK/demo.before
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "FAIL  demo: port $port is taken"; FAILED=$((FAILED + 1)); return; }
    (dc_close_fds; exec redis-server --bind 127.0.0.1 --port "$port" --requirepass "$pw" \
        --save '' --appendonly no --dir "$WORK") >"$WORK/redis.log" 2>&1 &
    redis_pid=$!
    dc_wait_for "requirepass-only redis" "$WORK/redis.log" "$redis_pid" \
        env REDISCLI_AUTH="$pw" redis-cli --no-auth-warning -p "$port" ping
    snapshot >"$before"
    if DC_REDIS_PORT=$port DC_REDIS_USER='' DC_REDIS_PASSWORD=$pw \
            docs/examples/demo-chain dc_docs_demo >"$WORK/demo.out" 2>&1; then
        printf 'ok    %-26s %s\n' docs/examples/demo-chain "(Redis with requirepass only)"
    else
        echo "FAIL  docs/examples/demo-chain (Redis with requirepass only)"
        sed 's/^/    /' "$WORK/demo.out" | tail -n 40
        FAILED=$((FAILED + 1))
    fi
    psql -X -q -c "DROP DATABASE dc_docs_demo WITH (FORCE)"
    snapshot >"$WORK/demo.after"
    remove_new "$before" "$WORK/demo.after"
}

pages=("$@")
(( ${#pages[@]} )) || pages=(README.md docs/*.md)
for page in "${pages[@]}"; do
    run_page "$page"
done
(( $# )) || run_demo
(( FAILED == 0 )) || { echo "$FAILED page(s) failed"; exit 1; }
echo "every example ran as documented"
