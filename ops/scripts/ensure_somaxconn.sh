#!/bin/bash
# The kernel cuts every listen queue to net.core.somaxconn: make sure it allows the app's.
# Usage: ensure_somaxconn.sh QUEUE
set -eu
want=$1
have=$(cat /proc/sys/net/core/somaxconn)
[ "$have" -lt "$want" ] || exit 0
if ! sysctl -q -w "net.core.somaxconn=$want" 2>/dev/null; then
  echo "net.core.somaxconn is $have, below listen_queue $want, and this host cannot raise it" \
       "(a container?): set listen_queue to $have or less, or raise it where the kernel runs" >&2
  exit 1
fi
# Kept across reboots; only ever raised (this runs only when the value is below the app's).
echo "net.core.somaxconn = $want" > /etc/sysctl.d/60-flask-ops.conf
echo "changed: net.core.somaxconn raised from $have to $want (listen_queue)"
