#!/bin/bash
# ALTER EXTENSION datacore UPDATE from every released version gives the same
# extension as a fresh install of the current one: the same member objects,
# the same function definitions, columns, constraints, policies, grants and
# dump-registered tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(test/services env)"
export PGDATABASE=postgres PGOPTIONS="-c client_min_messages=warning"
fresh=regress_upgrade_fresh updated=regress_upgrade_updated
cleanup() {
    psql -X -q -c "DROP DATABASE IF EXISTS $fresh" -c "DROP DATABASE IF EXISTS $updated" >/dev/null 2>&1 || true
}
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" datacore.control)
released=$(ls sql/datacore--*.sql | sed -n 's,^sql/datacore--\([0-9.]*\)\.sql$,\1,p' | grep -vx "$current" || true)
[[ -n $released ]] || { echo "no released version to upgrade from"; exit 1; }

# One line per fact about an extension member; sorted, so the two
# installations can be compared with diff.
snapshot() {
    local out
    out=$(psql -X -At -v ON_ERROR_STOP=1 -d "$1" <<'SQL'

WITH m AS (
    SELECT d.classid, d.objid, d.objsubid
      FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
     WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'datacore'
       AND d.deptype = 'e')
SELECT 'member ' || (pg_identify_object(classid, objid, objsubid)).identity
     || ' ' || (pg_identify_object(classid, objid, objsubid)).type FROM m
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' acl=' || coalesce(p.proacl::text, '-')
     || E'\n' || pg_get_functiondef(p.oid)
  FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
 WHERE p.prokind IN ('f', 'p', 'w')
UNION ALL
SELECT 'aggregate ' || p.oid::regprocedure || ' acl=' || coalesce(p.proacl::text, '-')
  FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
 WHERE p.prokind = 'a'
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '-')
     || ' rls=' || c.relrowsecurity || ' opts=' || coalesce(c.reloptions::text, '-')
  FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'column ' || c.oid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
     || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
     || ' acl=' || coalesce(a.attacl::text, '-') || ' num=' || a.attnum
  FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'constraint ' || con.conrelid::regclass || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
  FROM m JOIN pg_constraint con ON m.classid = 'pg_class'::regclass AND con.conrelid = m.objid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
UNION ALL
SELECT 'view ' || c.oid::regclass || E'\n' || pg_get_viewdef(c.oid)
  FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
 WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM m JOIN pg_trigger t ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || pol.polrelid::regclass || ' ' || pol.polname || ' cmd=' || pol.polcmd::text
     || ' roles=' || pol.polroles::regrole[]::text
     || ' using=' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '-')
     || ' check=' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '-')
  FROM m JOIN pg_policy pol ON m.classid = 'pg_class'::regclass AND pol.polrelid = m.objid
UNION ALL
SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text || ' acl=' || coalesce(t.typacl::text, '-')
  FROM m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
UNION ALL
SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '-')
  FROM m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
UNION ALL
SELECT 'wrapper ' || w.fdwname || ' handler=' || w.fdwhandler::regproc || ' validator='
     || w.fdwvalidator::regproc || ' acl=' || coalesce(w.fdwacl::text, '-')
  FROM m JOIN pg_foreign_data_wrapper w ON m.classid = 'pg_foreign_data_wrapper'::regclass AND w.oid = m.objid
UNION ALL
SELECT 'config_dump ' || c::regclass || ' ' || coalesce(cond, '-')
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, cond)
 WHERE e.extname = 'datacore';
SQL
) || return 1
    LC_ALL=C sort <<<"$out"
}

fail=0
for old in $released; do
    cleanup
    psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $fresh" -c "CREATE DATABASE $updated"
    psql -X -q -v ON_ERROR_STOP=1 -d $fresh -c "CREATE EXTENSION datacore"
    psql -X -q -v ON_ERROR_STOP=1 -d $updated \
        -c "CREATE EXTENSION datacore VERSION '$old'" -c "ALTER EXTENSION datacore UPDATE"
    got=$(psql -X -At -d $updated -c "SELECT extversion FROM pg_extension WHERE extname = 'datacore'")
    if [[ $got != "$current" ]]; then
        echo "FAIL: updating from $old ended at version $got, not $current"
        fail=1
        continue
    fi
    snapshot $fresh >"$tmp/fresh" || { echo "FAIL: snapshot query failed"; exit 1; }
    snapshot $updated >"$tmp/updated" || { echo "FAIL: snapshot query failed"; exit 1; }
    members=$(grep -c '^member' "$tmp/fresh" || true)
    if (( members < 50 )); then
        echo "FAIL: the snapshot found only $members member objects"
        fail=1
        continue
    fi
    if ! diff -u --label "fresh $current" --label "updated from $old" "$tmp/fresh" "$tmp/updated"; then
        echo "FAIL: updating from $old differs from a fresh $current install"
        fail=1
        continue
    fi
    echo "ok: $old -> $current matches a fresh install ($members member objects)"
done
exit $fail
