#!/bin/bash
# nginx accepts long server names: server_names_hash_bucket_size in conf.d (its default, 64,
# refuses a name longer than about 55 characters), unless the host already sets its own.
# Usage: ensure_nginx_names.sh BUCKET_SIZE
set -eu
size=$1
conf=/etc/nginx/conf.d/flask-ops-server-names.conf
if grep -qs '^[[:space:]]*server_names_hash_bucket_size' /etc/nginx/nginx.conf /etc/nginx/conf.d/*.conf; then
  exit 0
fi
mkdir -p /etc/nginx/conf.d
printf '# Managed by flask-ops: long server names (nginx default: 64).\nserver_names_hash_bucket_size %s;\n' "$size" > "$conf"
echo "changed: $conf (server names up to $((size - 9)) characters)"
