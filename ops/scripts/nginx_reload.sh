#!/bin/bash
# nginx's reload returns once the signal is sent; until the new workers run, the old
# configuration still answers. Wait (bounded: 10 s) until no pre-reload worker is left.
# Usage: nginx_reload.sh INIT
set -u
# flask-ops: include service.sh
workers() { pgrep -f '^nginx: worker process$' | tr '\n' ' ' || true; }
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
exit 0
