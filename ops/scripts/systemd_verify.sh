#!/bin/bash
# Check a unit file. systemd-analyze exits 0 on unknown keys and bad values ("..., ignoring");
# we do not ignore: any output is a failure.
# Usage: systemd_verify.sh UNIT_FILE...
set -u
out=$(systemd-analyze verify "$@" 2>&1)
status=$?
# systemd 247 (Debian 11) may say this of the verifier's own process, in a container shortly
# after boot: it is about systemd-analyze, not about the units.
out=$(printf '%s\n' "$out" | grep -v "Couldn't move remaining userspace processes" || true)
if [ $status -ne 0 ] || [ -n "$out" ]; then
  echo "$out" >&2
  exit 1
fi
