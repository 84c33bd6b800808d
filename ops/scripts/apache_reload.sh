#!/bin/bash
# Apache's graceful reload returns once the signal is sent. Its old children keep accepting
# connections, with the old configuration, until each reads the parent's "pipe of death" and
# closes the listening sockets; on a busy host that takes a while, and a new site's first
# request met the old catch-all's 403 (ci47, ci49). Wait (bounded: 10 s) until every process
# that holds Apache's listening sockets is the parent or a child started after the reload.
# Usage: apache_reload.sh INIT
set -u
# flask-ops: include service.sh
holders() {
  ss -Hltnp 2>/dev/null | grep -o '"apache2",pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' '
}
old=" $(holders)"
svc reload apache2 || exit 1
command -v ss >/dev/null || { echo "apache_reload.sh: no ss (iproute2) to wait with" >&2; exit 0; }
for _ in $(seq 1 100); do
  stale=0 fresh=0
  now=" $(holders)"
  for p in $now; do
    # the parent (whose own parent holds no listener) keeps them across reloads
    case "$now " in *" $(ps -o ppid= -p "$p" | tr -d ' ') "*) ;; *) continue ;; esac
    case "$old " in *" $p "*) stale=1 ;; *) fresh=1 ;; esac
  done
  [ $fresh = 1 ] && [ $stale = 0 ] && exit 0
  sleep 0.1
done
echo "apache_reload.sh: after 10 s no new child, or an old one still accepts" >&2
exit 0
