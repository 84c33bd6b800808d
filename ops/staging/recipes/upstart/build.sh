#!/usr/bin/env bash
# Build upstart 1.12.1 (Ubuntu 14.04's init) and libnih from the vendored sources into DESTDIR:
# the layer a staging host's root gets on top of the Debian image (ops/staging/upstart.py).
# Usage: build.sh VENDOR_DIR DESTDIR. About 100 s on 2 cores; the caller caches the result.
# The flags are the ones vendor/upstart/README.md explains (a modern gcc and glibc); the
# sources are not patched. libnih is linked statically, so the layer carries upstart only.
set -euo pipefail
vendor=$(realpath "$1")
dest=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc)

tar -xzf "$vendor"/libnih-*.tar.gz -C "$work"
tar -xzf "$vendor"/upstart-*.tar.gz -C "$work"
nih_src=$(find "$work" -maxdepth 1 -type d -name 'libnih*' | head -1)
upstart_src=$(find "$work" -maxdepth 1 -type d -name 'upstart*' | head -1)
nih=$work/nih-prefix

cd "$nih_src"
autoreconf -fi >/dev/null 2>&1
CFLAGS="-O2 -fcommon" ./configure -q --prefix="$nih" --disable-shared --enable-static --with-pic \
  --disable-nls >/dev/null
make -s -j"$jobs" >/dev/null 2>&1 || { make 2>&1 | tail -20 >&2; exit 1; }
make -s install >/dev/null

cd "$upstart_src"
autoreconf -fi >/dev/null 2>&1
PKG_CONFIG_PATH=$nih/lib/pkgconfig PATH=$nih/bin:$PATH \
  CFLAGS="-O2 -fcommon -D_GNU_SOURCE -include sys/sysmacros.h" \
  ./configure -q --prefix=/usr --exec-prefix=/usr --sysconfdir=/etc --localstatedir=/var \
  --disable-nls >/dev/null
PATH=$nih/bin:$PATH make -s -j"$jobs" >/dev/null 2>&1 || { PATH=$nih/bin:$PATH make 2>&1 | tail -20 >&2; exit 1; }
make -s install DESTDIR="$dest" >/dev/null
