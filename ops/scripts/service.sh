#!/bin/bash
# Services of the host (nginx, apache2), controlled the way its init system does it: systemctl
# on systemd; on upstart, `service` and update-rc.d (the front servers are sysv services
# there, as on Ubuntu 14.04). Included by the scripts that start, stop or reload them
# (`# flask-ops: include service.sh`); their first argument names the init (ops.targets.inits).
svc_init=${1:?the init system: systemd or upstart}
shift
# (each script calls only some of these: shellcheck's SC2317 would call the rest unreachable)
# shellcheck disable=SC2317
svc_enabled() {
  if [ "$svc_init" = systemd ]; then systemctl is-enabled --quiet "$1" 2>/dev/null
  else compgen -G "/etc/rc2.d/S[0-9][0-9]$1" >/dev/null; fi
}
# shellcheck disable=SC2317
svc_enable() {
  if [ "$svc_init" = systemd ]; then systemctl enable --quiet "$1"
  else update-rc.d "$1" defaults >/dev/null 2>&1; update-rc.d "$1" enable >/dev/null; fi
}
# shellcheck disable=SC2317
svc_disable_now() {
  if [ "$svc_init" = systemd ]; then systemctl disable --now --quiet "$1"
  else service "$1" stop >/dev/null 2>&1 || true; update-rc.d "$1" disable >/dev/null; fi
}
# shellcheck disable=SC2317
svc_active() {
  if [ "$svc_init" = systemd ]; then systemctl is-active --quiet "$1"
  else service "$1" status >/dev/null 2>&1; fi
}
# svc ACTION NAME: start, restart or reload. On systemd, an action that failed because systemd
# could not spawn the service at all (Result=resources, "Failed to spawn executor": seen once
# in CI on a trixie container of this cgroup v1 machine, right after a stop) is tried once
# more; the service's own failures (a bad config: exit-code) are not.
# shellcheck disable=SC2317
svc() {
  if [ "$svc_init" != systemd ]; then service "$2" "$1"; return; fi
  systemctl "$1" "$2" && return 0
  [ "$(systemctl show -P Result "$2" 2>/dev/null)" = resources ] || return 1
  systemctl reset-failed "$2" 2>/dev/null || true
  systemctl "$1" "$2"
}
# svc_reload_fresh NAME: reload, then wait (bounded: 10 s) until every process the caller's
# `acceptors` lists (those that accept connections) was started by this reload. A reload
# returns once the signal is sent; the old processes keep answering with the old
# configuration until they let go of the listening sockets, and a new site's first request
# met the old catch-all (ci47, ci49).
# shellcheck disable=SC2317
svc_reload_fresh() {
  local old now p stale fresh
  old=" $(acceptors) "
  svc reload "$1" || return 1
  for _ in $(seq 1 100); do
    now=$(acceptors) stale=0 fresh=0
    for p in $now; do
      case "$old" in *" $p "*) stale=1 ;; *) fresh=1 ;; esac
    done
    [ $fresh = 1 ] && [ $stale = 0 ] && return 0
    sleep 0.1
  done
  echo "$1: after 10 s no new process accepts, or an old one still does" >&2
}
# svc_gone NAME: after it was stopped, wait (bounded: 10 s) until none of its processes is
# left, so that the server taking over its ports can bind them.
# shellcheck disable=SC2317
svc_gone() {
  for _ in $(seq 1 100); do
    pgrep -x "$1" >/dev/null || return 0
    sleep 0.1
  done
  echo "$1 is still running 10 s after it was stopped" >&2
}
# svc_must ACTION NAME: svc, and when that fails, why: the service's last log lines and what
# holds the web ports (not systemd's "see systemctl status" alone), then fail.
# shellcheck disable=SC2317
svc_must() {
  svc "$1" "$2" && return 0
  echo "$2 did not $1; its last log lines:" >&2
  if [ "$svc_init" = systemd ]; then journalctl -u "$2" -n 15 --no-pager -o cat >&2 || true
  else tail -n 15 "/var/log/$2/error.log" >&2 || true; fi
  echo "listening on ports 80 and 443:" >&2
  ss -Hltnp '( sport = :80 or sport = :443 )' >&2 || true
  return 1
}
