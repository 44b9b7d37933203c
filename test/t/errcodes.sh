#!/bin/bash
# docs/errors.md lists every SQLSTATE datacore raises: each ERRCODE_* of the
# C sources and each "USING ERRCODE" of the install script must have a row
# in its table, and each row must name a code that is raised (or say that
# PostgreSQL raises it).  Codes are read from PostgreSQL's own errcodes.h, so
# a name and its five characters cannot disagree.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/lib.sh

header=$("$PG_CONFIG" --includedir-server)/utils/errcodes.h
[[ -f $header ]] || { echo "FAIL: $header not found"; exit 1; }

# ERRCODE_NAME -> five characters, from lines like
#   #define ERRCODE_CONNECTION_FAILURE MAKE_SQLSTATE('0','8','0','0','6')
declare -A code_of
while read -r name code; do
    code_of[$name]=$code
done < <(sed -n "s/^#define \(ERRCODE_[A-Z0-9_]*\) MAKE_SQLSTATE('\(.\)','\(.\)','\(.\)','\(.\)','\(.\)')/\1 \2\3\4\5\6/p" "$header")

declare -A raised                    # code -> where
while read -r file name; do
    code=${code_of[$name]:-}
    [[ -n $code ]] || { echo "FAIL: $file uses $name, which PostgreSQL does not define"; exit 1; }
    raised[$code]="${raised[$code]:-} $file"
done < <(perl -ne 'while (/(case\s+|[=!]=\s*)?\b(ERRCODE_[A-Z0-9_]+)/g) {
                       # a code compared against (case, ==, !=) is not raised
                       print "$ARGV $2\n" unless $1 or $2 =~ /^ERRCODE_(TO|IS)_CATEGORY$/ }' src/*.c |
          sort -u)
# codes spelled out, such as PostgREST's PGRST
while read -r file code; do
    raised[$code]="${raised[$code]:-} $file"
done < <(perl -ne "while (/MAKE_SQLSTATE\('(.)', *'(.)', *'(.)', *'(.)', *'(.)'\)/g) { print \"\$ARGV \$1\$2\$3\$4\$5\n\" }" src/*.c | sort -u)

# USING ERRCODE = 'condition_name' or '22023' in the install script.
while read -r file value; do
    if [[ $value =~ ^[0-9A-Z]{5}$ ]]; then
        code=$value
    else
        code=${code_of[ERRCODE_${value^^}]:-}
        [[ -n $code ]] || { echo "FAIL: $file raises unknown condition $value"; exit 1; }
    fi
    raised[$code]="${raised[$code]:-} $file"
done < <(grep -oi "ERRCODE *= *'[a-z0-9_]*'" sql/install/*.sql | sed "s/:.*'\(.*\)'/ \1/" | sort -u)

declare -A documented
while IFS='|' read -r _ code rest; do
    code=${code//[ \`]/}
    documented[$code]=$rest
done < <(grep -E '^\| `[0-9A-Z]{5}`' docs/errors.md)

bad=0
for code in $(printf '%s\n' "${!raised[@]}" | sort); do
    if [[ -z ${documented[$code]+x} ]]; then
        echo "FAIL: SQLSTATE $code is raised by${raised[$code]} but docs/errors.md has no row for it"
        bad=1
    fi
done
for code in $(printf '%s\n' "${!documented[@]}" | sort); do
    if [[ -z ${raised[$code]+x} && ${documented[$code]} != *"PostgreSQL's own"* ]]; then
        echo "FAIL: docs/errors.md lists $code, which nothing raises (say \"PostgreSQL's own\" if PostgreSQL does)"
        bad=1
    fi
done
(( bad == 0 )) || exit 1
echo "ok: ${#raised[@]} SQLSTATEs raised, all in docs/errors.md"
