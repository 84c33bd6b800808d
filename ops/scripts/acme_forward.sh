#!/bin/bash
# Whether this host sends an app's ACME challenges it has no file for to another balancer:
# UPSTREAM (host:port of the balancer running certbot for the app's names) or, when empty,
# not (the file is removed). Writes DIR/APP.upstream, a server line of the port's
# flask_ops_acme_PORT upstream (the catch-all includes it). Prints `changed` when it changed.
# Usage: acme_forward.sh DIR APP UPSTREAM
set -eu
dir=$1 app=$2 upstream=$3
file="$dir/$app.upstream"
want=''
if [ -n "$upstream" ]; then want="server $upstream max_fails=0;"; fi
if [ -z "$want" ]; then
  if [ -e "$file" ]; then rm -f "$file"; echo changed; fi
elif [ "$(cat "$file" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$dir"
  printf '%s\n' "$want" > "$file.new" && mv -f "$file.new" "$file"
  echo changed
fi
