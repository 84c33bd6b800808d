#!/bin/bash
# Apache's graceful reload, then a wait until only children started by it accept
# (svc_reload_fresh): its old children keep accepting, with the old configuration, until each
# reads the parent's "pipe of death", which on a busy host takes a while.
# Usage: apache_reload.sh INIT
set -u
# flask-ops: include service.sh
command -v ss >/dev/null || {
  echo "apache_reload.sh: no ss (iproute2) to wait with" >&2; svc reload apache2; exit; }
# The children holding Apache's listening sockets: not the parent, which keeps them across
# reloads (its own parent holds none); mod_wsgi's daemons hold none.
acceptors() {
  local holders p
  holders=" $(ss -Hltnp 2>/dev/null | grep -o '"apache2",pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' ')"
  for p in $holders; do
    case "$holders " in *" $(ps -o ppid= -p "$p" | tr -d ' ') "*) printf '%s ' "$p" ;; esac
  done
}
svc_reload_fresh apache2 || exit 1
