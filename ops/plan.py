"""Desired state -> the scripts a deploy runs on the target. Pure: no SSH, no files.

Each function returns one shell (or Python) script that the executor runs in one round
trip, so a deploy is a handful of commands and every step can be unit-tested and printed
by --dry-run without a host.
"""

import base64
import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from . import checks, render

META = ".flask-ops"  # inside each release: manifest, rendered configs, candidate configs
q = shlex.quote


@dataclass(frozen=True)
class Release:
    """A release built on the deploy side, ready to ship."""

    id: str
    digest: str
    requirements_digest: str
    files: tuple  # RenderedFile
    upload_name: str  # basename of the bundle, uploaded to /tmp


def state_dir(s):
    return f"{s.base}/{META}"


def lock_dir(s):
    return f"{state_dir(s)}/lock"


def release_dir(s, release_id):
    return f"{s.releases}/{release_id}"


def venv_dir(s, requirements_digest):
    return f"{s.shared}/venvs/{requirements_digest}"


def wheelhouse_dir(s, requirements_digest):
    return f"{s.shared}/wheelhouse/{requirements_digest}"


def config_files(files):
    return [f for f in files if not f.in_release]


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def front_service(s):
    return "nginx" if s.stack == "nginx-uwsgi" else "apache2"


def front_sites_enabled(s):
    return "/etc/nginx/sites-enabled" if s.stack == "nginx-uwsgi" else "/etc/apache2/sites-enabled"


def site_files(files):
    """The front server's site files among rendered files (linked into sites-enabled)."""
    return [f for f in files if f.kind in (render.NGINX, render.APACHE)]


def enabled_names(s):
    """Our files in sites-enabled (links to sites-available)."""
    return [PurePosixPath(f.path).name for f in site_files(render.render(s))]


# ---- shell lines shared by app hosts and load balancers

def candidate_sites_lines(sites_enabled, cand_sites, ours):
    """A fresh candidate sites dir holding every other enabled site; ours are added after."""
    names = " ".join(q(n) for n in ours)
    return [f"rm -rf {q(cand_sites)} && mkdir -p {q(cand_sites)}",
            f"for f in {q(sites_enabled)}/*; do [ -e \"$f\" ] || continue; "
            f"n=$(basename \"$f\"); skip=; for o in {names}; do [ \"$n\" != \"$o\" ] || skip=1; done; "
            f"[ -n \"$skip\" ] || cp -L \"$f\" {q(cand_sites)}/\"$n\"; done"]


def install_line(src, dest, mode=0o644):
    """Install src over dest by an atomic rename: readers see the old file or the new one."""
    return (f"install -D -m {mode:o} {q(src)} {q(dest)}.flask-ops-new && "
            f"mv -f {q(dest)}.flask-ops-new {q(dest)}")


def enable_line(sites_enabled, path):
    return f"ln -sfn {q(path)} {q(sites_enabled + '/' + PurePosixPath(path).name)}"


def write_line(path, content, mode=0o644):
    """Write content to path on the host. The content travels base64-encoded inside one quoted
    argument: no heredoc delimiter or shell syntax in a rendered file can end it early."""
    data = base64.b64encode(content.encode()).decode()
    return (f"printf %s {q(data)} | base64 -d > {q(path)}.flask-ops-new && "
            f"chmod {mode:o} {q(path)}.flask-ops-new && mv -f {q(path)}.flask-ops-new {q(path)}")


# ----------------------------------------------------------------------------- facts

FACTS_PY = r'''
import hashlib, json, os, pwd, shutil, socket, subprocess, sys, time
args = json.loads(sys.argv[1])
base, state = args["base"], args["state"]
def sha(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None
def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
def active(unit):
    if not shutil.which("systemctl"):
        return None
    return subprocess.run(["systemctl", "is-active", unit], stdout=subprocess.PIPE,
                          text=True).stdout.strip()
init = "unknown"
if os.path.isdir("/run/systemd/system"):
    init = "systemd"
elif shutil.which("initctl"):
    out = subprocess.run(["initctl", "version"], stdout=subprocess.PIPE, text=True).stdout
    init = "upstart" if "upstart" in out else "unknown"
current = os.path.realpath(base + "/current") if os.path.islink(base + "/current") else None
releases = sorted(d for d in os.listdir(base + "/releases")
                  if os.path.isfile(f"{base}/releases/{d}/.flask-ops/manifest.json")) \
    if os.path.isdir(base + "/releases") else []
try:
    pwd.getpwnam(args["user"]); user = True
except KeyError:
    user = False
facts = {
    "init": init,
    "python": "%d.%d" % sys.version_info[:2],
    "arch": os.uname().machine,
    "user": user,
    "provisioned": os.path.isdir(base + "/shared") and os.path.isdir(base + "/releases"),
    "current": os.path.basename(current) if current else None,
    "releases": releases,
    "manifest": json.loads(read(current + "/.flask-ops/manifest.json") or "null") if current else None,
    "live": {p: sha(p) for p in args["paths"]},
    "enabled": {n: os.path.islink(args["sites_enabled"] + "/" + n) for n in args["enabled"]},
    "wheelhouse": os.path.exists(args["wheelhouse"] + "/.complete"),
    "venv": os.path.exists(args["venv"] + "/.complete"),
    "main_conf": read(args["main_conf"]),
    "active": {u: active(u) for u in args["units"]},
    "state": json.loads(read(state + "/state.json") or "{}"),
    "lock": None, "locked_by_us": False, "now": time.time(),
}
lock = state + "/lock"
if args["acquire"]:
    os.makedirs(state, exist_ok=True)
    try:
        os.mkdir(lock)
        with open(lock + "/info.json", "w") as f:
            json.dump(args["lock_info"], f)
        facts["locked_by_us"] = True
    except FileExistsError:
        pass
if not facts["locked_by_us"] and os.path.isdir(lock):
    facts["lock"] = json.loads(read(lock + "/info.json") or "{}")
print(json.dumps(facts))
'''


def facts_script(s, release_digest_req, acquire, lock_info, files):
    args = {
        "base": s.base, "state": state_dir(s), "user": s.app_user,
        "paths": [f.path for f in config_files(files)],
        "sites_enabled": front_sites_enabled(s), "enabled": enabled_names(s),
        "wheelhouse": wheelhouse_dir(s, release_digest_req),
        "venv": venv_dir(s, release_digest_req),
        "main_conf": "/etc/nginx/nginx.conf" if s.stack == "nginx-uwsgi" else "/etc/apache2/apache2.conf",
        "units": [front_service(s)] + ([s.service] if s.stack == "nginx-uwsgi" else []),
        "acquire": acquire, "lock_info": lock_info,
    }
    return f"python3 -c {q(FACTS_PY)} {q(json.dumps(args))}"


# ----------------------------------------------------------------------------- changes

def changed_configs(files, facts):
    """Config files whose content differs from what the host has now."""
    return [f for f in config_files(files) if facts["live"].get(f.path) != sha256(f.content)]


def actions(s, files, facts):
    """What must be restarted or reloaded, and why: ('restart'|'reload', unit)."""
    changed = {f.kind for f in changed_configs(files, facts)}
    pending = set(facts.get("state", {}).get("pending", []))
    todo = []
    if s.stack == "nginx-uwsgi":
        unit = s.service
        restart = (render.SYSTEMD in changed or render.UPSTART in changed
                   or facts["active"].get(unit) != "active" or f"restart {unit}" in pending)
        todo.append(("restart" if restart else "reload", unit))
    front = front_service(s)
    front_restart = facts["active"].get(front) != "active" or f"restart {front}" in pending
    todo.append(("restart" if front_restart else "reload", front))
    return todo


# ----------------------------------------------------------------------------- stage

def candidate_main(s, facts, release_id):
    """The host's main server config, including the candidate sites instead of the live ones."""
    cand = f"{release_dir(s, release_id)}/{META}/candidate/sites"
    if s.stack == "nginx-uwsgi":
        return checks.nginx_candidate_main(facts["main_conf"], cand)
    return checks.apache_candidate_main(facts["main_conf"], cand)


def stage_script(s, release, facts):
    """Unpack the upload, give it its venv, and check every config on the target, in the
    context of the whole server config, before anything live changes."""
    rel = release_dir(s, release.id)
    tmp = rel + ".partial"
    venv = venv_dir(s, release.requirements_digest)
    wheels = wheelhouse_dir(s, release.requirements_digest)
    upload = f"/tmp/{release.upload_name}"
    lines = [
        "set -e",
        f"trap {q(f'rm -rf {q(tmp)} {q(upload)}')} EXIT",
        f"rm -rf {q(tmp)} && mkdir -p {q(tmp)}",
        f"tar -xzf {q(upload)} -C {q(tmp)} --no-same-owner",
    ]
    if not facts["wheelhouse"]:
        lines += [f"rm -rf {q(wheels)} && mkdir -p {q(wheels)}",
                  f"mv {q(tmp)}/wheelhouse/* {q(wheels)}/ && touch {q(wheels)}/.complete"]
    lines.append(f"rm -rf {q(tmp)}/wheelhouse")
    if not facts["venv"]:
        # Offline install: the target never reaches the network.
        lines += [f"rm -rf {q(venv)}",
                  f"{q(s.python)} -m venv {q(venv)}",
                  # The flat, checked copy (ops.requirements): no pip option from the app's
                  # file can reach the network from here.
                  f"{q(venv)}/bin/pip install --quiet --no-index --no-cache-dir "
                  f"--disable-pip-version-check --find-links {q(wheels)} "
                  f"-r {q(tmp + '/' + META + '/requirements.txt')}",
                  f"touch {q(venv)}/.complete"]
    lines += [
        f"ln -sfn {q(venv)} {q(tmp)}/venv",
        # Release files belong to root: the app's group can read them, nobody else can change
        # them, and files keep their other bits (a 0600 file never becomes world-readable).
        # Collected static files are public by nature: the front server reads them.
        f"chown -R root:{q(s.group)} {q(tmp)} && chmod -R ug-s,g+rX,g-w,o-w {q(tmp)}",
        f"chmod -R a+rX {q(tmp + '/collected_static')}",
        f"rm -rf {q(rel)} && mv {q(tmp)} {q(rel)}",
        "trap - EXIT",
        f"rm -f {q(upload)}",
    ]
    lines += check_lines(s, rel)
    return "\n".join(lines)


def check_lines(s, rel):
    """Shell lines that run the target's own checkers on release `rel`'s configs."""
    meta = f"{rel}/{META}"
    cand = f"{meta}/candidate"
    sites = site_files(render.render(s))
    # Every other site stays in the picture; ours replace their live versions.
    lines = candidate_sites_lines(front_sites_enabled(s), f"{cand}/sites",
                                  [PurePosixPath(f.path).name for f in sites])
    for f in sites:
        lines.append(f"cp {q(meta + '/etc' + f.path)} {q(cand)}/sites/")
    if s.stack == "nginx-uwsgi":
        lines.append(" ".join(q(a) for a in checks.nginx_test_command(f"{cand}/main.conf")) + " 2>&1")
        ini = f"{meta}/etc{s.uwsgi_ini}"
        lines.append(" ".join(q(a) for a in checks.uwsgi_test_command(ini)) + " >/dev/null")
        if s.init == "systemd":
            unit = f"{meta}/etc/etc/systemd/system/{s.service}.service"
            lines.append(f"out=$(systemd-analyze verify {q(unit)} 2>&1) || true; "
                         f"[ -z \"$out\" ] || {{ echo \"$out\" >&2; exit 1; }}")
    else:
        lines.append(" ".join(q(a) for a in checks.apache_test_command(f"{cand}/main.conf")) + " 2>&1")
    return lines


# ----------------------------------------------------------------------------- switch

def install_lines(s, rel):
    """Install release `rel`'s config files over the live ones, each by an atomic rename."""
    files = render.render(s)
    lines = [install_line(f"{rel}/{META}/etc{f.path}", f.path, f.mode) for f in config_files(files)]
    lines += [enable_line(front_sites_enabled(s), f.path) for f in site_files(files)]
    return lines


# `systemctl reload nginx` returns once the signal is sent; until the new workers run, the
# old configuration still answers. Wait (bounded) until no pre-reload worker accepts anymore.
NGINX_RELOAD = """old=$(pgrep -f '^nginx: worker process$' | tr '\\n' ' ' || true)
systemctl reload nginx
for i in $(seq 1 100); do
  new=" $(pgrep -f '^nginx: worker process$' | tr '\\n' ' ' || true)"; stale=0
  for p in $old; do case "$new " in *" $p "*) stale=1;; esac; done
  [ "$new" != " " ] && [ $stale = 0 ] && break; sleep 0.1
done"""


def service_lines(s, todo):
    lines = []
    if any(unit == s.service for _, unit in todo) and s.init == "systemd":
        lines.append("systemctl daemon-reload")
    for action, unit in todo:
        if unit == s.service and s.init == "upstart":
            lines.append(f"initctl reload-configuration && (initctl restart {q(unit)} || "
                         f"initctl start {q(unit)})" if action == "restart"
                         else f"initctl reload {q(unit)}")
        elif action == "restart":
            lines.append(f"systemctl reset-failed {q(unit)} 2>/dev/null || true")
            lines.append(f"systemctl enable --quiet {q(unit)} && systemctl restart {q(unit)}")
        else:
            lines.append(NGINX_RELOAD if unit == "nginx" else f"systemctl reload {q(unit)}")
    return lines


def pending_line(s, todo):
    """Record the restarts this switch needs before doing them: a failure later cannot lose them."""
    pending = [f"restart {unit}" for action, unit in todo if action == "restart"]
    return state_write(s, {"pending": pending})


def state_write(s, updates):
    py = ("import json,sys,os;p=sys.argv[1];"
          "d=json.load(open(p)) if os.path.exists(p) else {};d.update(json.loads(sys.argv[2]));"
          "open(p+'.new','w').write(json.dumps(d));os.replace(p+'.new',p)")
    return f"python3 -c {q(py)} {q(state_dir(s) + '/state.json')} {q(json.dumps(updates))}"


def current_lines(s, rel):
    """Point `current` at rel atomically (a rename; never a moment without `current`)."""
    return [f"ln -sfn {q(rel)} {q(s.base)}/current.flask-ops-new",
            f"mv -T {q(s.base)}/current.flask-ops-new {q(s.current)}"]


def switch_script(s, release_id, todo):
    """Point `current` at the release, install its configs, reload what changed."""
    rel = release_dir(s, release_id)
    return "\n".join(["set -e", pending_line(s, todo)] + install_lines(s, rel)
                     + current_lines(s, rel) + service_lines(s, todo)
                     + [state_write(s, {"pending": []})])


def verify_script(s, release_id, timeout=30):
    """Wait until every app process runs from the new release directory (not an old cwd)."""
    rel = release_dir(s, release_id)
    expected = s.processes + 1 if s.stack == "nginx-uwsgi" else s.processes
    fail_fast = ""
    if s.stack == "nginx-uwsgi" and s.init == "systemd":
        # A crashing app makes systemd restart uWSGI in a loop: say so at once, with its log.
        fail_fast = (f"state=$(systemctl show -p ActiveState -p SubState --value {q(s.service)} | "
                     f"tr '\\n' ' '); case \"$state\" in failed*|*auto-restart*) "
                     f"echo {q(s.service)}\" is $state; its log:\" >&2; "
                     f"journalctl -u {q(s.service)} -n 15 --no-pager -o cat >&2; exit 1;; esac")
    if s.stack == "nginx-uwsgi":
        # The uWSGI master (the unit's main process) and its workers.
        pids = (f"main=$(systemctl show -p MainPID --value {q(s.service)}); pids=; "
                f"[ \"$main\" = 0 ] || pids=\"$main $(pgrep -P $main | tr '\\n' ' ')\"")
    else:
        pids = f"pids=$(pgrep -f {q('^[(]wsgi:' + s.app_name + '[)]')} || true)"
    return f"""deadline=$(( $(date +%s) + {timeout} ))
while :; do
  {pids}
  ok=1; n=0
  for p in $pids; do
    n=$((n+1)); cwd=$(readlink /proc/$p/cwd 2>/dev/null || echo gone)
    [ "$cwd" = {q(rel)} ] || ok=0
  done
  [ $n -ge {expected} ] && [ $ok -eq 1 ] && {{ echo "$n processes run "{q(release_id)}; exit 0; }}
  {fail_fast}
  if [ $(date +%s) -ge $deadline ]; then
    echo "after {timeout}s the app processes do not all run "{q(release_id)}":" >&2
    for p in $pids; do echo "  pid $p cwd $(readlink /proc/$p/cwd 2>/dev/null)" >&2; done
    [ $n -gt 0 ] || echo "  no app process is running" >&2
    exit 1
  fi
  sleep 0.2
done"""


def going_back(s):
    """Services after returning to an earlier release: the app server restarted (it may be
    crash-looping on the failed code), the front server reloaded."""
    todo = [("restart", s.service)] if s.stack == "nginx-uwsgi" else []
    return todo + [("reload", front_service(s))]


def restore_script(s, previous_id, failed_id):
    """Put the previous release back (configs, current, services); drop the failed one."""
    lines = ["set -e"]
    if previous_id:
        rel = release_dir(s, previous_id)
        lines += install_lines(s, rel) + current_lines(s, rel) + service_lines(s, going_back(s))
    else:
        # Nothing to go back to: take our site out, so the host serves what it served before.
        lines += [f"rm -f {q(front_sites_enabled(s) + '/' + n)}" for n in enabled_names(s)]
        if s.stack == "nginx-uwsgi" and s.init == "systemd":
            lines.append(f"systemctl disable --now --quiet {q(s.service)} 2>/dev/null || true")
        lines.append(f"rm -f {q(s.current)}")
        lines.append(f"systemctl reload {q(front_service(s))} 2>/dev/null || true")
    if failed_id and failed_id != previous_id:
        lines.append(f"rm -rf {q(release_dir(s, failed_id))}")
    return "\n".join(lines)


def finish_script(s, release_id, keep, record):
    """Record the deploy, prune old releases (never the current one), release the lock."""
    return "\n".join([
        "set -e",
        state_write(s, {"last_deploy": record}),
        f"cd {q(s.releases)} && for r in $(ls -1 | grep -v '[.]partial$' | sort | "
        f"head -n -{keep} || true); do [ \"$r\" = {q(release_id)} ] || rm -rf \"$r\"; done",
        f"rm -rf {q(lock_dir(s))}",
    ])


def unlock_script(s):
    return f"rm -rf {q(lock_dir(s))}"
