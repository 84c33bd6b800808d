#!/bin/bash
# Directories with exactly this owner, group and mode: fixed (and said) when they differ.
# Usage: ensure_dirs.sh PATH OWNER GROUP MODE [PATH OWNER GROUP MODE]...
set -eu
while [ $# -ge 4 ]; do
  path=$1 owner=$2 group=$3 mode=$4
  shift 4
  if [ "$(stat -c '%U:%G %a' "$path" 2>/dev/null)" != "$owner:$group $mode" ]; then
    install -d -o "$owner" -g "$group" -m "$mode" "$path"
    echo "changed: $path ($owner:$group $mode)"
  fi
done
