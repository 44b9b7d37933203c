#!/bin/bash
# Qdrant in a database that is not UTF-8: what is sent is converted to
# UTF-8 (payloads, condition values, payload keys); text from a reply
# (payload strings, collection names, jsonb) is converted to the database
# encoding, a character the encoding lacks is PostgreSQL's own error
# (22P05), and \u0000 is refused (22021) before anything becomes text.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres PGOPTIONS="-c client_min_messages=warning" PGCLIENTENCODING=UTF8
db=regress_latin1
qd="http://127.0.0.1:$DC_QDRANT_PORT"
cleanup() {
    curl -sS -X DELETE "$qd/_test/fault" >/dev/null || true
    curl -sS -X DELETE "$qd/collections/regress_latin1" >/dev/null || true
    psql -X -q -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql -X -q -c "DROP DATABASE IF EXISTS $db" \
    -c "CREATE DATABASE $db ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<SQL
CREATE EXTENSION datacore;
CREATE SERVER qdrant FOREIGN DATA WRAPPER datacore_qdrant OPTIONS (url '$qd');
CREATE FOREIGN TABLE docs (id bigint, title text, payload jsonb) SERVER qdrant
    OPTIONS (collection 'regress_latin1');
CREATE FOREIGN TABLE docs_p (id bigint, payload jsonb) SERVER qdrant
    OPTIONS (collection 'regress_latin1');
CREATE FOREIGN TABLE docs_k (id bigint, vector real[], "clé" text) SERVER qdrant
    OPTIONS (collection 'regress_latin1');
SELECT datacore.qdrant_create_collection('regress_latin1', 1);
INSERT INTO docs_k VALUES (2, '{1}', 'été');
SELECT datacore.qdrant_upsert('regress_latin1', 1::bigint, '{1}', '{"title": "café", "clé": "été"}');
SQL

# One canned reply per request; $1 is the reply's JSON body.
canned() {
    local body
    body=$(node -e 'process.stdout.write(JSON.stringify({mode: "status", status: 200, times: 1, body: process.argv[1]}))' "$1")
    curl -sS -X POST -H 'Content-Type: application/json' --data-raw "$body" "$qd/_test/fault" >/dev/null
}
fail=0
check() {    # name, expected output, SQL
    local got
    got=$(psql -X -At -v VERBOSITY=${VERBOSITY:-default} -d $db -c "$3" 2>&1 | sed 's/^psql:[^:]*:[0-9]*: //') || true
    if [[ "$got" != "$2" ]]; then
        echo "FAIL: $1"; echo "  want: $2"; echo "  got:  $got"; fail=1
    else
        echo "ok: $1"
    fi
}

# what is sent is UTF-8: written, found by a pushed-down condition, read back
check "insert, pushdown and read back" "1|café|{\"clé\": \"été\", \"title\": \"café\"}
2|été|{\"clé\": \"été\"}" "
    SELECT p.id, coalesce(d.title, k.\"clé\"), p.payload FROM docs_p p
      LEFT JOIN docs d ON d.id = p.id AND d.title = 'café'
      LEFT JOIN docs_k k ON k.id = p.id AND k.\"clé\" = 'été' AND p.id = 2
     WHERE p.id IN (1, 2) ORDER BY 1"
check "condition on a non-ASCII key and value sent as UTF-8" "1
2" "SELECT id FROM docs_k WHERE \"clé\" = 'été' ORDER BY 1"

points='{"result": {"points": [{"id": 1, "payload": {"title": "café", "n": 1.5}}], "next_page_offset": null}, "status": "ok", "time": 0}'
canned "$points"
check "payload string converted to LATIN1" "café|636166e94" \
    "SELECT title, encode(convert_to(title, 'LATIN1'), 'hex') || length(title) FROM docs"
canned "$points"
check "jsonb converted to LATIN1" '{"n": 1.5, "title": "café"}' "SELECT payload FROM docs_p"
canned '{"result": {"collections": [{"name": "zoé"}]}, "status": "ok", "time": 0}'
check "collection name converted to LATIN1" "zoé" "SELECT datacore.qdrant_collections()"

canned '{"result": {"points": [{"id": 1, "payload": {"title": "5 €"}}], "next_page_offset": null}, "status": "ok", "time": 0}'
check "a character LATIN1 lacks (text)" \
    'ERROR:  character with byte sequence 0xe2 0x82 0xac in encoding "UTF8" has no equivalent in encoding "LATIN1"
CONTEXT:  column "title" of foreign table "docs", point 1' \
    "SELECT title FROM docs"
canned '{"result": {"points": [{"id": 1, "payload": {"title": "5 €"}}], "next_page_offset": null}, "status": "ok", "time": 0}'
check "a character LATIN1 lacks (jsonb)" \
    'ERROR:  character with byte sequence 0xe2 0x82 0xac in encoding "UTF8" has no equivalent in encoding "LATIN1"
CONTEXT:  column "payload" of foreign table "docs_p", point 1' \
    "SELECT payload FROM docs_p"
canned '{"result": {"points": [{"id": 1, "payload": {"title": "a\u0000b"}}], "next_page_offset": null}, "status": "ok", "time": 0}'
VERBOSITY=sqlstate check "NUL refused" 'ERROR:  22021' "SELECT title FROM docs"
exit $fail
