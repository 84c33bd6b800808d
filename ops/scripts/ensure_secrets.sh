#!/bin/bash
# The app's environment file (0600, readable by the app user only) with a random value for
# every NAME it lacks. Values are generated here and never leave the host: only names print.
# Usage: ensure_secrets.sh ENV_FILE USER NAME...
set -eu
env_file=$1 user=$2
shift 2
[ -f "$env_file" ] || {
  (umask 077; : > "$env_file")
  chown "$user:root" "$env_file"
  echo "changed: created $env_file (0600, $user)"
}
for name in "$@"; do
  grep -q "^$name=" "$env_file" || {
    printf '%s=%s\n' "$name" "$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >> "$env_file"
    echo "changed: generated $name in $env_file"
  }
done
