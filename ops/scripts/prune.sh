#!/bin/bash
# Remove all but the newest KEEP releases, never the one named CURRENT.
# Usage: prune.sh RELEASES_DIR KEEP CURRENT
set -eu
releases=$1 keep=$2 current=$3
mapfile -t old < <(find "$releases" -mindepth 1 -maxdepth 1 ! -name '*.partial' -printf '%f\n' \
  | sort | head -n "-$keep")
for r in "${old[@]}"; do
  [ "$r" = "$current" ] || rm -rf -- "${releases:?}/$r"
done
