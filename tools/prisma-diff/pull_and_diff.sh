#!/usr/bin/env bash
# Usage: DATABASE_URL=postgresql://... ./pull_and_diff.sh [target.prisma]
#    or: ./pull_and_diff.sh <database-url> [target.prisma]
# Introspects the live database with `prisma db pull` (Prisma 6.19.3, WASM schema engine via
# @prisma/adapter-pg, wrapped to decode `name`/"char" catalog columns as text) into a scratch
# schema, then runs `prisma migrate diff --exit-code` against the target schema.
# Exit: 0 = no difference, 2 = different (the fixing SQL is printed), other = error.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ge 1 && "$1" == postgres* ]]; then export DATABASE_URL="$1"; shift; fi
: "${DATABASE_URL:?set DATABASE_URL or pass it as the first argument}"
TARGET="$(realpath "${1:-$HERE/../../reference/seed-schema.prisma}")"
export PRISMA_SCHEMA_ENGINE_BINARY=/bin/false PRISMA_QUERY_ENGINE_LIBRARY=/bin/false
export PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/pulled.prisma" <<'S'
datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}
S
cd "$HERE"
[[ -d node_modules ]] || npm install --ignore-scripts --no-audit --no-fund >/dev/null
PRISMA=("$HERE/node_modules/.bin/prisma")
CFG=(--config "$HERE/prisma.pull.config.ts")

if ! "${PRISMA[@]}" db pull "${CFG[@]}" --schema "$WORK/pulled.prisma" >"$WORK/pull.log" 2>&1; then
  cat "$WORK/pull.log" >&2; echo "pull_and_diff: prisma db pull failed" >&2; exit 1
fi
[[ -n "${KEEP_PULLED:-}" ]] && cp "$WORK/pulled.prisma" "$KEEP_PULLED"

"${PRISMA[@]}" migrate diff "${CFG[@]}" --from-schema-datamodel "$WORK/pulled.prisma" \
  --to-schema-datamodel "$TARGET" --exit-code 2>/dev/null
rc=$?
if [[ $rc -eq 2 ]]; then
  echo "---- SQL that would bring the database to the target schema:"
  "${PRISMA[@]}" migrate diff "${CFG[@]}" --from-schema-datamodel "$WORK/pulled.prisma" \
    --to-schema-datamodel "$TARGET" --script 2>/dev/null
fi
exit $rc
