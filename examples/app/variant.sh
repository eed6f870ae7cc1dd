#!/usr/bin/env bash
# variant.sh DIR CHANGE... - turn a checkout of this example app into another release (then git commit it).
#   version X.Y.Z          write VERSION (reported by /health, and a good value for APP_VERSION)
#   health ok|fail|crash|fail-on-hN   app/health_mode: fail -> GET /health answers 500 (fail-on-h3: only on
#                          the sandbox host h3); crash -> the api exits at start
#   migration good|fail|slow  add a revision on top of the current head: good adds a nullable column
#                          to items (with a working downgrade); fail changes the schema, then raises;
#                          slow is good but holds its transaction for 6 s; hang holds it for 10 minutes;
#                          drop drops items.description with its data, and its downgrade raises
# e.g. "v2 broken":        variant.sh work version 2.0.0 health fail
#      "failing migration": variant.sh work version 3.0.0 migration fail
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:?usage: variant.sh DIR CHANGE...}; shift
versions=$dir/migrations/versions
head_rev() {
  local revs downs r
  revs=$(sed -n 's/^revision = "\(.*\)"/\1/p' "$versions"/*.py)
  downs=$(sed -n 's/^down_revision = "\(.*\)"/\1/p' "$versions"/*.py)
  for r in $revs; do grep -qx "$r" <<<"$downs" || echo "$r"; done
}
while [ $# -gt 0 ]; do
  case "$1" in
    version) echo "${2:?version}" >"$dir/VERSION"; shift 2 ;;
    health)
      case "${2:-}" in ok|fail|crash|fail-on-h[0-9]*) echo "$2" >"$dir/app/health_mode" ;; *) echo "health ok|fail|fail-on-hN|crash" >&2; exit 2 ;; esac
      shift 2 ;;
    migration)
      head=$(head_rev); [ "$(wc -w <<<"$head")" = 1 ] || { echo "expected one head, got: $head" >&2; exit 1; }
      next=$(printf '%04d' $((10#$head + 1)))
      case "${2:-}" in
        good) src=$here/variants/add_column_migration.py; name=${next}_items_price_$next.py ;;
        fail) src=$here/variants/failing_migration.py; name=${next}_fails_on_purpose.py ;;
        slow) src=$here/variants/slow_migration.py; name=${next}_slow_$next.py ;;
        hang) src=$here/variants/slow_migration.py; name=${next}_hang_$next.py; seconds=600 ;;
        drop) src=$here/variants/drop_column_migration.py; name=${next}_drop_description.py ;;
        *) echo "migration good|fail|slow|hang|drop" >&2; exit 2 ;;
      esac
      sed -e "s/^revision = .*/revision = \"$next\"/" -e "s/^down_revision = .*/down_revision = \"$head\"/" \
          -e "s/^Revision ID: .*/Revision ID: $next/" -e "s/^Revises: .*/Revises: $head/" \
          -e "s/\"price\"/\"price_$next\"/g" -e "s/\"slow\"/\"slow_$next\"/g" \
          -e "s/half_done/half_done_$next/g" -e "s/migration 0099/migration $next/" \
          -e "s/^SLOW_SECONDS = .*/SLOW_SECONDS = ${seconds:-6}/" \
          "$src" >"$versions/$name"
      echo "$versions/$name"
      shift 2 ;;
    *) echo "unknown change: $1" >&2; exit 2 ;;
  esac
done
