#!/bin/bash
# The app's own system group and user (no login, no home of its own): created when missing;
# a user whose primary group is another (www-data, from older flask-ops) is moved to its own.
# Usage: ensure_account.sh USER GROUP HOME
set -eu
user=$1 group=$2 home=$3
getent group "$group" >/dev/null || { groupadd --system "$group"; echo "changed: created group $group"; }
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --gid "$group" --home-dir "$home" --no-create-home --shell /usr/sbin/nologin \
    --comment "flask-ops app $user" "$user"
  echo "changed: created user $user"
elif [ "$(id -gn "$user")" != "$group" ]; then
  usermod --gid "$group" "$user"
  echo "changed: $user's group is now $group"
fi
