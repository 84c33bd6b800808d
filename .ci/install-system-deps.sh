#!/usr/bin/env bash
# Debian packages the toolkit and its tests use on the deploy side: the real servers whose
# checkers validate rendered configs, uWSGI, and what staging hosts are built and booted with.
# With --docker: Docker's engine and CLI, docker-compose and Vagrant instead, for the Docker-
# and Vagrant-backed staging paths (only `vagrant validate` runs here: no provider can).
# Idempotent; installs nothing when everything is present. Services are not started (a
# Docker daemon is started by `fab staging.up --engine docker` when none answers).
set -euo pipefail
PACKAGES=(nginx apache2 libapache2-mod-wsgi-py3 uwsgi-core uwsgi-plugin-python3 shellcheck
          debootstrap systemd-container iproute2 openssh-client python3-venv curl
          pebble
          # upstart and libnih from vendor/upstart, for the upstart staging host
          autoconf automake libtool autopoint gettext pkg-config make gcc libc6-dev
          libdbus-1-dev libjson-c-dev libexpat1-dev)
if [ "${1:-}" = "--docker" ]; then
  PACKAGES=(docker.io docker-compose vagrant)
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to install: ${missing[*]}" >&2; exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
apt-get update -qq
# Keep the packages' postinst scripts from starting nginx/apache on this machine.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
