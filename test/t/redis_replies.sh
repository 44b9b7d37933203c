#!/bin/bash
# Replies a real Redis gives only in states datacore no longer lets a
# connection get into (QUEUED inside MULTI), or only when something is
# broken (a reply cut off, bytes that are not RESP): every typed function
# and the foreign table must treat a reply of the wrong type as an error,
# never as success, and a connection whose protocol state is unknown must
# be dropped, not reused.  A real redis-server cannot be made to answer
# like that on demand, so the scripted RESP server test/servers/resp.js does.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres

STATE=$(mktemp -d)
fake_pid=
cleanup() {
    [[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null || true
    psql -X -q -c "DROP SERVER IF EXISTS regress_fake CASCADE" >/dev/null 2>&1 || true
    rm -rf "$STATE"
}
trap cleanup EXIT

# The reply to each command, by "NAME key" or "NAME"; CONNS answers the
# number of connections accepted so far; "GET half" sends part of a bulk
# string and then nothing; the two SCAN pages both hold "b", as SCAN may
# answer while Redis resizes its table, and MGET answers each key's name.
cat >"$STATE/script.json" <<'JSON'
{"replies": {
  "SET nil": "$-1\r\n", "SET": "+QUEUED\r\n", "GET": "+QUEUED\r\n",
  "INCRBY conns": "CONNS", "INCRBY": "+QUEUED\r\n", "HSET": "+QUEUED\r\n",
  "PEXPIRE": "+QUEUED\r\n", "LPUSH": "+QUEUED\r\n", "HGETALL": "+QUEUED\r\n",
  "DEL": "+QUEUED\r\n", "GET half": "$10\r\nabc", "GET garbage": "!garbage\r\n",
  "GET list": "*1\r\n:1\r\n", "GET bigarray": "*100000000\r\n",
  "SCAN 0": "*2\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
  "SCAN 1": "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
  "MGET": "KEYS_AS_VALUES"
}}
JSON
node test/servers/resp.js "$STATE/script.json" >"$STATE/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do grep -q listening "$STATE/fake.log" && break; sleep 0.05; done
port=$(sed -n 's/^resp listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$STATE/fake.log")
[[ -n $port ]] || { cat "$STATE/fake.log" >&2; exit 1; }

PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION IF NOT EXISTS datacore;
DROP SERVER IF EXISTS regress_fake CASCADE;
CREATE SERVER regress_fake FOREIGN DATA WRAPPER datacore_redis
    OPTIONS (host '127.0.0.1', port '$port', timeout_ms '5000');
CREATE FOREIGN TABLE regress_fake_str (key text, value text) SERVER regress_fake;
CREATE FOREIGN TABLE regress_fake_hash (key text, value jsonb)
    SERVER regress_fake OPTIONS (table_type 'hash');
SQL

failed=0
# check NAME OUTPUT PATTERN: OUTPUT has a line matching PATTERN
check() {
    if grep -Eq -- "$3" <<<"$2"; then
        echo "ok: $1"
    else
        echo "FAIL: $1: expected /$3/, got:" >&2
        sed 's/^/    /' <<<"$2" >&2
        failed=1
    fi
}

# expect NAME SQL PATTERN: the output of SQL (errors included) matches PATTERN
expect() {
    check "$1" "$(psql -X -c "SET search_path = datacore, public" -c "$2" 2>&1 || true)" "$3"
}

unexpected='ERROR:  redis server "regress_fake" sent an unexpected reply to'
expect "redis_set refuses QUEUED" \
    "SELECT redis_set('k', 'v', server => 'regress_fake')" "$unexpected redis_set"
expect "QUEUED is named in the detail" \
    "SELECT redis_set('k', 'v', server => 'regress_fake')" 'DETAIL:  The reply is a status: QUEUED'
expect "redis_set without NX refuses nil" \
    "SELECT redis_set('nil', 'v', server => 'regress_fake')" "$unexpected redis_set"
expect "redis_set with NX takes nil as false" \
    "SELECT redis_set('nil', 'v', only_if_absent => true, server => 'regress_fake')" '^ f$'
expect "redis_get refuses a status" \
    "SELECT redis_get('k', 'regress_fake')" "$unexpected redis_get"
# hiredis would allocate the element vector of 100 million elements (800 MB)
# at the header; the reader refuses an array the byte limit cannot hold
expect "an array header beyond max_response_bytes is refused at once" \
    "SELECT redis_get('bigarray', 'regress_fake')" \
    'ERROR:  response from redis server "regress_fake" to redis_get exceeds the size limit'
expect "the refused array is named in the detail" \
    "SELECT redis_get('bigarray', 'regress_fake')" \
    'DETAIL:  The reply announces an array of 100000000 elements, more than a reply of at most 67108864 bytes can hold.'
expect "redis_get refuses an array" \
    "SELECT redis_get('list', 'regress_fake')" "$unexpected redis_get"
expect "redis_incr refuses QUEUED" \
    "SELECT redis_incr('k', server => 'regress_fake')" "$unexpected redis_incr"
expect "redis_hset refuses QUEUED" \
    "SELECT redis_hset('k', 'f', 'v', 'regress_fake')" "$unexpected redis_hset"
expect "redis_expire refuses QUEUED" \
    "SELECT redis_expire('k', '1 hour', 'regress_fake')" "$unexpected redis_expire"
expect "redis_lpush refuses QUEUED" \
    "SELECT redis_lpush('k', 'v', 'regress_fake')" "$unexpected redis_lpush"
expect "redis_hgetall refuses QUEUED" \
    "SELECT redis_hgetall('k', 'regress_fake')" "$unexpected redis_hgetall"
expect "redis_del refuses QUEUED" \
    "SELECT redis_del('k', 'regress_fake')" "$unexpected redis_del"
expect "INSERT refuses QUEUED" \
    "INSERT INTO regress_fake_str VALUES ('k', 'v')" "$unexpected INSERT into a redis foreign table"
expect "a key SCAN returns twice is one row" \
    "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM regress_fake_str" '^ a=a,b=b,c=c$'
expect "a key read refuses QUEUED" \
    "SELECT * FROM regress_fake_hash WHERE key = 'k'" "$unexpected a scan of a redis foreign table"

# protocol state unknown: the connection is dropped and the next call
# opens a new one (CONNS counts them); all in one session, so one cached
# connection is all there should be
out=$(psql -X -At 2>&1 <<'SQL' || true
SET search_path = datacore, public;
SELECT redis_incr('conns', server => 'regress_fake') AS c0 \gset
SET statement_timeout = '300ms';
SELECT redis_get('half', 'regress_fake');
RESET statement_timeout;
SELECT 'after cut: ' || (redis_incr('conns', server => 'regress_fake') - :c0);
SELECT 'reused: ' || (redis_incr('conns', server => 'regress_fake') - :c0);
SELECT redis_get('garbage', 'regress_fake');
SELECT 'after garbage: ' || (redis_incr('conns', server => 'regress_fake') - :c0);
SET statement_timeout = '300ms';
DO $$
BEGIN
	BEGIN
		PERFORM datacore.redis_get('half', 'regress_fake');
	EXCEPTION WHEN query_canceled THEN
		RAISE NOTICE 'caught';
	END;
	RESET statement_timeout;
END $$;
RESET statement_timeout;
SELECT 'after caught cut: ' || (redis_incr('conns', server => 'regress_fake') - :c0);
SQL
)
for want in 'canceling statement due to statement timeout' '^after cut: 1$' '^reused: 1$' \
            'sent an invalid reply to redis_get' '^after garbage: 2$' 'NOTICE:  caught' \
            '^after caught cut: 3$'; do
    check "$want" "$out" "$want"
done

exit $failed
