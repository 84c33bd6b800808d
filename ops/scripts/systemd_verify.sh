#!/bin/bash
# Check a unit file. systemd-analyze exits 0 on unknown keys and bad values ("..., ignoring");
# we do not ignore: any output is a failure.
# Usage: systemd_verify.sh UNIT_FILE...
set -u
out=$(systemd-analyze verify "$@" 2>&1)
status=$?
if [ $status -ne 0 ] || [ -n "$out" ]; then
  echo "$out" >&2
  exit 1
fi
