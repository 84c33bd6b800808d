#!/usr/bin/env bash
# What the Docker- and Vagrant-backed staging paths need on the deploy side (Debian packages):
# Docker's engine and CLI, docker-compose, and Vagrant (only `vagrant validate` runs here: no
# VirtualBox or libvirt provider can). Idempotent; the daemon is not started here
# (`fab staging.up --engine docker` starts one when none answers).
set -euo pipefail
PACKAGES=(docker.io docker-compose vagrant)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-docker-deps: need root to install: ${missing[*]}" >&2; exit 1
fi
echo "install-docker-deps: installing ${missing[*]}"
apt-get update -qq
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
