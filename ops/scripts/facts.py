"""What the host is now: init system, Python, releases, live config digests, services.

Argument: one JSON object (see ops.deploy.plan.facts_command). Prints one JSON line, with
"digest": every fact but the clock and the lock, as one sha256. Reads only, unless the object
has "lock" ({"state": STATE_DIR, "info": WHO}): then it first takes the host's deploy lock and
prints {"acquired": bool} before (in this same interpreter: the lock's own python3 on the host
cost each deploy about 20 ms).

And when it also has "noop" ({"digest", "renew_before", "history": SOURCE, "file", "entry"}):
the deployer last saw this host serve the same build with facts of that digest. If they still
have it (and a certificate certbot renews is not due), nothing can differ: the no-op is
recorded in the history (SOURCE is history_append.py, the history's one writer, run in this
interpreter), the lock released, and "noop": true says so. A no-op is then one SSH command,
not two.
"""
import glob
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import time


def sha(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def active(units, init):
    """{unit: systemd's word for its state}: on systemd one "systemctl is-active" for all
    (one line each, in order; a call per unit cost the facts 15 ms each); on upstart, the
    job's state, or the sysv service's (nginx and apache2 are not upstart jobs there). A host
    may have systemctl installed without systemd running: the init that runs decides."""
    if not units:
        return {}
    if init == "systemd":
        out = subprocess.run(["systemctl", "is-active", *units], stdout=subprocess.PIPE,
                             text=True).stdout.split("\n")
        return {u: (out[i].strip() if i < len(out) else "unknown") for i, u in enumerate(units)}
    return {u: one_active(u, init) for u in units}


def one_active(unit, init):
    if init == "upstart":
        if os.path.exists(f"/etc/init/{unit}.conf"):
            out = subprocess.run(["initctl", "status", unit], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True).stdout
            return "active" if "start/running" in out else "inactive"
        if os.path.exists(f"/etc/init.d/{unit}"):
            code = subprocess.run(["service", unit, "status"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode
            return "active" if code == 0 else "inactive"
        return "inactive"
    return None


VERSION_PACKAGES = ("nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras",
                    "uwsgi-core", "apache2", "libapache2-mod-wsgi-py3", "systemd")


def package_versions():
    """{package: Debian version} of the servers whose version decides the rendered files."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\\n",
                              *VERSION_PACKAGES], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    versions = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("ii"):
            versions[parts[0]] = parts[2]
    return versions


def ipv6():
    """The kernel has IPv6 and it is not switched off: nginx can listen on [::]."""
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            return f.read().strip() == "0" and os.path.exists("/proc/net/if_inet6")
    except OSError:
        return False


def glibc():
    """glibc's version ("2.36"), None on another C library."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    except (AttributeError, ValueError, OSError):
        return None
    return version if name == "glibc" else None


def init_system():
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    if shutil.which("initctl"):
        out = subprocess.run(["initctl", "version"], stdout=subprocess.PIPE, text=True).stdout
        if "upstart" in out:
            return "upstart"
    return "unknown"


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def certificate(path):
    """The served certificate: issuer, names, expiry (epoch), sha256 of the file; None."""
    if not path or not os.path.isfile(path) or not shutil.which("openssl"):
        return None
    out = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-enddate", "-ext",
                          "subjectAltName", "-in", path], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    if out.returncode != 0:
        return None
    info = {"issuer": None, "not_after": 0, "names": [], "sha256": sha(path)}
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("issuer="):
            info["issuer"] = line[len("issuer="):].strip()
        elif line.startswith("notAfter="):
            import ssl  # only here: importing it costs every deploy's facts
            info["not_after"] = ssl.cert_time_to_seconds(line[len("notAfter="):].strip())
        elif line.startswith("DNS:"):
            info["names"] = [p.strip()[4:] for p in line.split(",") if p.strip().startswith("DNS:")]
    return info


def main(args):
    base = args["base"]
    releases_dir = base + "/releases"
    current = os.path.realpath(base + "/current") if os.path.islink(base + "/current") else None
    releases = sorted(d for d in os.listdir(releases_dir)
                      if os.path.isfile(f"{releases_dir}/{d}/.flask-ops/manifest.json")) \
        if os.path.isdir(releases_dir) else []
    wanted = releases if args["manifests"] == "*" else args["manifests"]
    manifests = {r: read_json(f"{releases_dir}/{r}/.flask-ops/manifest.json", None)
                 for r in wanted if r in releases}
    lock = args["state"] + "/lock"
    init = init_system()
    return {
        "init": init,
        # The host's exact interpreter and C library: dependencies are resolved for them
        # (environment markers such as python_full_version <= "3.11.2", manylinux tags).
        "python": "%d.%d.%d" % sys.version_info[:3],
        "arch": os.uname().machine,
        "libc": glibc(),
        "versions": package_versions(),
        "ipv6": ipv6(),
        "user": user_exists(args["user"]),
        "provisioned": os.path.isdir(base + "/shared") and os.path.isdir(releases_dir),
        "current": os.path.basename(current) if current else None,
        "releases": releases,
        "manifest": read_json(current + "/.flask-ops/manifest.json", None) if current else None,
        "manifests": manifests,
        "live": {p: sha(p) for p in args["paths"]},
        "enabled": {n: os.path.islink(args["sites_enabled"] + "/" + n) for n in args["enabled"]},
        "wheelhouse": os.path.exists(args["wheelhouse"] + "/.complete"),
        "venv": os.path.exists(args["venv"] + "/.complete"),
        "main_conf": os.path.isfile(args["main_conf"]),
        "front": read_text(args["front_marker"]),
        "active": active(args["units"], init),
        "state": read_json(args["state"] + "/state.json", {}),
        "lock": read_json(lock + "/info.json", {}) if os.path.isdir(lock) else None,
        "tls": certificate(args.get("tls_cert")),
        "unprovisioned": [p for p in args.get("provisioned_files", []) if not os.path.exists(p)],
        # Worker units of this app on the host (a dropped one is removed by the deploy).
        "workers": sorted(os.path.splitext(os.path.basename(p))[0]
                          for p in glob.glob(args["worker_glob"])) if args.get("worker_glob") else [],
        "maintenance": os.path.exists(args["maintenance_flag"]) if args.get("maintenance_flag") else False,
        "now": time.time(),
    }


def acquire(state, info):
    """Take the deploy lock: a directory created atomically, holding who took it. A held
    lock is left alone (the facts say whose it is)."""
    if not os.path.isdir(state):
        # The app was never provisioned here (provision makes the state directory): there is
        # nothing to guard, preflight refuses the deploy, and the host must keep no trace
        # of it, so nothing is created.
        return True
    lock = state + "/lock"
    try:
        os.mkdir(lock)
    except FileExistsError:
        return False
    with open(lock + "/info.json", "w") as f:
        json.dump(info, f)
    return True


def facts_digest(facts):
    """What a no-op depends on, as one digest: every fact but the host's clock and the lock."""
    kept = {k: v for k, v in facts.items() if k not in ("now", "lock", "digest", "noop")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def confirm_noop(noop, facts, lock):
    """Record the no-op and release our lock when the host is as the deployer last saw it."""
    if facts["digest"] != noop["digest"]:
        return False
    renew = noop.get("renew_before")
    if renew is not None and (not facts["tls"] or facts["tls"]["not_after"] - facts["now"] <= renew):
        return False
    entry = dict(noop["entry"], started=facts["now"], previous=facts["current"])
    history = {"__name__": "history_append"}  # its main, without a second python3 (~12 ms)
    exec(noop["history"], history)
    history["main"](noop["file"], json.dumps(entry, sort_keys=True))
    shutil.rmtree(lock)
    return True


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    acquired = False
    if "lock" in request:
        acquired = acquire(request["lock"]["state"], request["lock"]["info"])
        print(json.dumps({"acquired": acquired}))
    facts = main(request)
    facts["digest"] = facts_digest(facts)
    lock = request.get("lock", {}).get("state", "") + "/lock"
    facts["noop"] = bool(acquired and "noop" in request and os.path.isdir(lock)
                         and confirm_noop(request["noop"], facts, lock))
    print(json.dumps(facts))
