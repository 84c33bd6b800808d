#!/bin/bash
# nginx's reload, then a wait until only the new workers accept (svc_reload_fresh).
# Usage: nginx_reload.sh INIT
set -u
# flask-ops: include service.sh
# Not "worker process is shutting down" (an old one draining). nginx 1.18 pads its title with
# NULs, which pgrep reads as spaces: without ' *' no worker ever matched there and every
# reload waited the full 10 s.
acceptors() { pgrep -f '^nginx: worker process *$' | tr '\n' ' ' || true; }
svc_reload_fresh nginx || exit 1
