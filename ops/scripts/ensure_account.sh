#!/bin/bash
# The app's system group and user (no login, no home of its own): created when missing.
# Usage: ensure_account.sh USER GROUP HOME
set -eu
user=$1 group=$2 home=$3
getent group "$group" >/dev/null || { groupadd --system "$group"; echo "changed: created group $group"; }
id -u "$user" >/dev/null 2>&1 || {
  useradd --system --gid "$group" --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user"
  echo "changed: created user $user"
}
