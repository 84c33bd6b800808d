#!/bin/bash
# nginx's reload returns once the signal is sent; until the new workers run, the old
# configuration still answers. Wait (bounded: 10 s) until no pre-reload worker is left.
# Usage: nginx_reload.sh INIT
set -u
# flask-ops: include service.sh
# Not "worker process is shutting down" (an old one draining). nginx 1.18 pads its title with
# NULs, which pgrep reads as spaces: without ' *' no worker ever matched there and every
# reload waited the full 10 s.
workers() { pgrep -f '^nginx: worker process *$' | tr '\n' ' ' || true; }
old=$(workers)
svc reload nginx || exit 1
for _ in $(seq 1 100); do
  new=" $(workers)"
  stale=0
  for p in $old; do
    case "$new " in *" $p "*) stale=1 ;; esac
  done
  [ "$new" != " " ] && [ $stale = 0 ] && exit 0
  sleep 0.1
done
echo "nginx_reload.sh: after 10 s no new worker, or an old one still answers" >&2
exit 0
