#!/bin/bash
# Wait until every app process runs from the new release directory (not an old cwd).
# Usage: verify.sh RELEASE_DIR RELEASE_ID EXPECTED TIMEOUT PIDS_COMMAND [FAIL_FAST_COMMAND]
#                  [WAKE_COMMAND]
# PIDS_COMMAND prints the app's process ids; FAIL_FAST_COMMAND exits non-zero (after saying
# why) when waiting longer is pointless, e.g. a unit in a restart loop; WAKE_COMMAND, run at
# each check, makes the app server notice a finished reload at once (uWSGI's master FIFO).
# The loop runs every 50 ms on a host whose CPU the new app processes need (a fleet's batch
# verifies several hosts at once): each look costs as few processes as it can. The commands
# run in subshells of this shell (no new bash), a cwd is compared with a builtin (`-ef`), the
# clock is bash's SECONDS, and FAIL_FAST runs at every eighth look (0.4 s).
set -u
rel=$1 release_id=$2 expected=$3 timeout=$4 pids_command=$5 fail_fast=${6:-true} wake=${7:-true}
SECONDS=0
# memory PIDS: what the app's processes add to the host. PSS (shared pages counted once, the
# figure that adds up across uWSGI's forked workers), or RSS where smaps cannot be read.
memory() {
  local p kib=0 rss=0 one
  for p in $1; do
    rss=$((rss + $(ps -o rss= -p "$p" 2>/dev/null || echo 0)))
    one=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
    if [ -n "$one" ] && [ "$kib" != none ]; then kib=$((kib + one)); else kib=none; fi
  done
  if [ "$kib" != none ]; then echo "PSS $((kib / 1024)) MiB"; else echo "RSS $((rss / 1024)) MiB"; fi
}
looks=0
while :; do
  (set +u; eval "$wake")
  pids=$(set +u; eval "$pids_command" 2>/dev/null)
  ok=1
  n=0
  for p in $pids; do
    n=$((n + 1))
    [ "/proc/$p/cwd" -ef "$rel" ] || ok=0
  done
  if [ "$n" -ge "$expected" ] && [ $ok -eq 1 ]; then
    echo "$n processes run $release_id, $(memory "$pids")"
    exit 0
  fi
  if [ $((looks++ % 8)) -eq 0 ] || [ "$SECONDS" -ge "$timeout" ]; then
    (set +u; eval "$fail_fast") || exit 1
  fi
  if [ "$SECONDS" -ge "$timeout" ]; then
    echo "after ${timeout}s the app processes do not all run $release_id:" >&2
    for p in $pids; do
      cwd=$(readlink "/proc/$p/cwd" 2>/dev/null) \
        || cwd="unreadable (root may read another user's /proc/PID/cwd only with CAP_SYS_PTRACE: a container started without it?)"
      echo "  pid $p cwd $cwd" >&2
    done
    [ "$n" -gt 0 ] || echo "  no app process is running" >&2
    exit 1
  fi
  sleep 0.05
done
