#!/bin/bash
# A fresh candidate sites directory holding every enabled site except ours (OURS...); the
# caller adds our new versions, so they are checked alongside every other site on the host.
# Usage: candidate_sites.sh SITES_ENABLED CANDIDATE_DIR [OURS...]
set -eu
sites_enabled=$1 candidate=$2
shift 2
rm -rf "$candidate"
mkdir -p "$candidate"
for f in "$sites_enabled"/*; do
  [ -e "$f" ] || continue
  n=$(basename "$f")
  skip=
  for o in "$@"; do [ "$n" != "$o" ] || skip=1; done
  [ -n "$skip" ] || cp -L "$f" "$candidate/$n"
done
