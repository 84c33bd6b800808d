#!/bin/bash
# Record which front server provision set up on this host (deploys compare it with their stack).
# Usage: ensure_front_marker.sh FRONT MARKER_FILE
set -eu
front=$1 marker=$2
[ "$(cat "$marker" 2>/dev/null)" = "$front" ] || {
  mkdir -p "$(dirname "$marker")"
  echo "$front" > "$marker"
  echo "changed: $front is this host's front server"
}
