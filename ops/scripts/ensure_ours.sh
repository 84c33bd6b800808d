#!/bin/bash
# Provision takes nothing that flask-ops did not make: not a directory another package or
# person made (no BASE/.flask-ops in it), not an account or group of someone else's.
# Usage: ensure_ours.sh BASE USER GROUP
set -u
base=$1 user=$2 group=$3
if [ -d "$base" ] && [ ! -d "$base/.flask-ops" ] && [ -n "$(ls -A "$base" 2>/dev/null)" ]; then
  echo "$base exists, holds files and was not made by flask-ops (no $base/.flask-ops): choose another base_dir" >&2
  exit 1
fi
if entry=$(getent passwd "$user"); then
  home=$(printf '%s' "$entry" | cut -d: -f6)
  comment=$(printf '%s' "$entry" | cut -d: -f5)
  case "$comment" in *flask-ops*) ;; *)
    if [ "$home" != "$base" ]; then
      echo "user $user exists and is not this app's (its home is $home, not $base): set deploy.user to an account of the app's own" >&2
      exit 1
    fi;;
  esac
elif getent group "$group" >/dev/null; then
  members=$(getent group "$group" | cut -d: -f4)
  if [ -n "$members" ]; then
    echo "group $group exists with members ($members) and is not this app's: set deploy.group to a group of the app's own" >&2
    exit 1
  fi
fi
exit 0
