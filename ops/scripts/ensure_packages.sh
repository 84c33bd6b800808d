#!/bin/bash
# Install the Debian packages that are missing (from the host's configured mirror; an
# offline host needs them preinstalled). Prints `changed: ...` when it installed any.
# Usage: ensure_packages.sh PACKAGE...
set -eu
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}" >/tmp/flask-ops-apt.log 2>&1; then
  echo "cannot install: ${missing[*]} (see /tmp/flask-ops-apt.log on the host; an offline host" \
    "needs them preinstalled)" >&2
  exit 1
fi
echo "changed: installed ${missing[*]}"
