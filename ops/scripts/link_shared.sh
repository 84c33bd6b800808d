#!/bin/bash
# Link the app's shared paths into a release being staged, creating each on first use.
# Usage: link_shared.sh LINKED_DIR RELEASE_TMP APP_USER APP_GROUP KIND:PATH...
# KIND is dir or file; PATH is relative to the release (checked by flask-ops' settings: no
# '..', safe characters). LINKED_DIR/PATH is the app's (0750 dirs, 0640 files), kept across
# deploys and rollbacks; the release gets a symlink to it in place of anything at PATH.
set -eu
linked=$1 tmp=$2 user=$3 group=$4
shift 4
install -d -o root -g "$group" -m 0750 "$linked"
for item in "$@"; do
  kind=${item%%:*} path=${item#*:}
  target="$linked/$path"
  parent=$(dirname "$path")
  if [ "$parent" != . ]; then
    # Directories between linked/ and the path: root's, so the app cannot swap them.
    install -d -o root -g "$group" -m 0750 "$linked/$parent"
    mkdir -p "$tmp/$parent"
  fi
  if [ -L "$target" ]; then
    echo "$target is a symlink; refusing to link it into a release" >&2
    exit 1
  fi
  if [ "$kind" = dir ]; then
    [ -d "$target" ] || install -d -o "$user" -g "$group" -m 0750 "$target"
  elif [ ! -e "$target" ]; then
    install -o "$user" -g "$group" -m 0640 /dev/null "$target"
  fi
  rm -rf "${tmp:?}/$path"
  ln -s "$target" "$tmp/$path"
done
