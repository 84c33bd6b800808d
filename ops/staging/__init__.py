"""Local staging hosts: Debian containers (bookworm, or trixie) booted with systemd-nspawn.

Each host is a real systemd machine (PID 1, sshd, nginx, apache) in its own network
namespace, on a private bridge in 198.18.0.0/24 (the benchmarking range), with no route
anywhere else. The root filesystem is built once with debootstrap and shared read-only
through overlayfs; each host writes only to its own upper directory.
"""

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..deploy import remote as remote_mod
from ..errors import OpsError
from . import docker as staging_docker, pebble, upstart as staging_upstart
from .net import (BRIDGE, BRIDGE_ADDR, BRIDGE_ADDR6, BRIDGE_MAC, PREFIX, PREFIX6, STATE_DIR,
                          bridge_is_up, bridge_mac, nspawn_address)
IMAGE_DIR = Path(os.environ.get("FLASK_OPS_IMAGE_DIR", "/var/cache/flask-ops/images"))
# Debian releases a staging host can run (debootstrap knows their suites). trixie brings
# Python 3.13, nginx 1.26, Apache 2.4.6x and systemd 257; bookworm is the default; bullseye
# carries the servers of Ubuntu 22.04's generation (nginx 1.18, uWSGI 2.0.19, Python 3.9,
# systemd 247), the oldest flask-ops renders for.
DEBIAN_RELEASES = ("bookworm", "trixie", "bullseye")
# Ubuntu LTS suites: the same builder with debootstrap's own Ubuntu mirror (archive.ubuntu.com),
# on a machine that reaches it (this project's CI does not: only the Debian ones are tested).
UBUNTU_RELEASES = ("jammy", "noble")
RELEASES = DEBIAN_RELEASES + UBUNTU_RELEASES
DEFAULT_RELEASE = "bookworm"
# systemd 256+ refuses cgroup v1 unless told to; a host machine without the unified
# hierarchy (like this one) can still boot it with these on the container's command line.
LEGACY_CGROUP_ARGS = ("systemd.unified_cgroup_hierarchy=0", "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1")
IMAGE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps", "curl",
    "nginx", "apache2", "libapache2-mod-wsgi-py3", "uwsgi-core", "uwsgi-plugin-python3",
    "python3-venv", "ca-certificates", "certbot", "openssl", "ssl-cert",
    # a `deploy` user with sudo, as on a VPS (tests/test_e2e_deploy.py)
    "sudo",
    # a Celery broker on the app host, as small deployments run it (tests/test_e2e_real_apps.py):
    # installed stopped, started by the test that needs it
    "redis-server",
    # debootstrap resolves no virtual packages: python3-cryptography (certbot) needs the
    # cffi backend it provides named outright.
    "python3-cffi-backend",
)
IMAGE_VERSION = "2"  # bump when the customisation below changes
ENGINES = ("nspawn", "docker")
# systemd (the image's own), or upstart 1.12 as PID 1 (ops.staging.upstart: nspawn only).
INITS = ("systemd", "upstart")
NAME = re.compile(r"staging([1-9][0-9]?)\Z")


@dataclass(frozen=True)
class Host:
    name: str

    @property
    def index(self):
        return int(NAME.match(self.name).group(1))

    def _recorded(self, name, default):
        """What booting the host wrote into its directory (engine, init, release)."""
        try:
            return (self.dir / name).read_text().strip()
        except OSError:
            return default

    @property
    def engine(self):
        """nspawn (the default) or docker: what booted this host."""
        return self._recorded("engine", "nspawn")

    @property
    def init(self):
        """systemd, or upstart: the host's PID 1."""
        return self._recorded("init", "systemd")

    @property
    def address(self):
        if self.engine == "docker":
            return f"198.19.0.{10 + self.index}"  # the Docker network's (staging.docker)
        return nspawn_address(self.index)

    @property
    def address6(self):
        """The host's IPv6 address on the bridge (nspawn hosts; None on Docker's network)."""
        return None if self.engine == "docker" else f"fd46:6f70:7300::{10 + self.index}"

    @property
    def host_key_pub(self):
        if self.engine == "docker":
            return self.dir / "ssh_host_ed25519_key.pub"
        return self.rootfs / "etc/ssh/ssh_host_ed25519_key.pub"

    @property
    def netns(self):
        return f"flask-ops-{self.name}"

    @property
    def veth(self):
        return f"fo-st{self.index}"

    @property
    def dir(self):
        return STATE_DIR / "hosts" / self.name

    @property
    def rootfs(self):
        return self.dir / "merged"

    @property
    def pid_file(self):
        return self.dir / "nspawn.pid"

    @property
    def release(self):
        """The Debian release this host was booted with."""
        return self._recorded("release", DEFAULT_RELEASE)


def host(name):
    if not NAME.match(name or ""):
        raise OpsError(f"'{name}' is not a staging host name (staging1 ... staging99)")
    return Host(name)


def ssh_config_path():
    return STATE_DIR / "ssh_config"


def ssh_config_for(name):
    """The SSH config staging.up wrote, when `name` is one of its hosts; else None."""
    path = ssh_config_path()
    return path if NAME.match(name or "") and path.exists() else None


def remote(name):
    """A Remote for a staging host, outside a Fabric task (tests, benchmarks)."""
    return remote_mod.open_host(name, ssh_config=ssh_config_path())


def key_path():
    return STATE_DIR / "id_ed25519"


def _sh(*argv, check=True, **kwargs):
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise OpsError(f"{' '.join(map(str, argv))} failed:\n{proc.stdout.strip()[-2000:]}")
    return proc


def _require_root():
    if os.geteuid() != 0:
        raise OpsError("staging hosts need root (debootstrap, network namespaces, nspawn)")
    for tool in ("debootstrap", "systemd-nspawn", "ip", "ssh-keygen"):
        if not shutil.which(tool):
            raise OpsError(f"{tool} is missing: run `make system-deps`")


# ------------------------------------------------------------------ image

def image_path(release=DEFAULT_RELEASE):
    digest = hashlib.sha256(" ".join((release, IMAGE_VERSION) + IMAGE_PACKAGES).encode())
    return IMAGE_DIR / f"{release}-{digest.hexdigest()[:12]}"


def check_release(release):
    if release not in RELEASES:
        raise OpsError(f"release {release!r}: one of {', '.join(RELEASES)} (Ubuntu: see "
                       "docs/staging.md)")
    return release


def _apt_mirror():
    """This machine's Debian mirror, so the image comes from where apt already fetches."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", path.read_text(), re.M)
        if match:
            return match.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+\S+\s+main", sources.read_text(), re.M)
        if match:
            return match.group(1)
    return None  # debootstrap's own default


def build_image(log=print, release=DEFAULT_RELEASE):
    """The cached root filesystem of `release`; built once per package list (about a minute)."""
    path = image_path(check_release(release))
    if (path / "etc" / "flask-ops-image").exists():
        return path
    _require_root()
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"building staging image {path.name} with debootstrap (about a minute, once)")
    mirror = _apt_mirror() if release in DEBIAN_RELEASES else None
    _sh("debootstrap", "--variant=minbase", "--include=" + ",".join(IMAGE_PACKAGES), release,
        tmp, *([mirror] if mirror else []))
    # Web servers start only once provisioning picks one (both want port 80).
    _sh("systemctl", f"--root={tmp}", "disable", "nginx", "apache2", "redis-server")
    for key in (tmp / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each host gets its own keys
    (tmp / "etc/machine-id").write_text("")
    # debootstrap writes no /etc/hosts; every real host has one, and apps reach their Redis
    # or database at `localhost` (the Celery example does).
    (tmp / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    (tmp / "etc/flask-ops-image").write_text(json.dumps({"packages": IMAGE_PACKAGES}))
    shutil.rmtree(tmp / "var/cache/apt/archives", ignore_errors=True)
    tmp.rename(path)
    return path


# ------------------------------------------------------------------ network

def _ensure_bridge():
    if not bridge_is_up():
        _sh("ip", "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge")
        _sh("ip", "addr", "add", f"{BRIDGE_ADDR}/{PREFIX}", "dev", BRIDGE)
    elif bridge_mac() != BRIDGE_MAC:
        _sh("ip", "link", "set", BRIDGE, "address", BRIDGE_MAC)  # a bridge made before it was fixed
    if BRIDGE_ADDR6 not in _sh("ip", "-6", "addr", "show", "dev", BRIDGE, check=False).stdout:
        # nodad: usable at once (no duplicate address detection on a bridge of our own)
        _sh("ip", "-6", "addr", "add", f"{BRIDGE_ADDR6}/{PREFIX6}", "dev", BRIDGE, "nodad",
            check=False)
    _sh("ip", "link", "set", BRIDGE, "up")


def _setup_netns(h):
    if not Path("/run/netns", h.netns).exists():
        _sh("ip", "netns", "add", h.netns)
    if _sh("ip", "link", "show", h.veth, check=False).returncode != 0:
        _sh("ip", "link", "add", h.veth, "type", "veth", "peer", "name", h.veth + "c")
        _sh("ip", "link", "set", h.veth + "c", "netns", h.netns)
        _sh("ip", "-n", h.netns, "link", "set", h.veth + "c", "name", "eth0")
        _sh("ip", "-n", h.netns, "addr", "add", f"{h.address}/{PREFIX}", "dev", "eth0")
        _sh("ip", "-n", h.netns, "-6", "addr", "add", f"{h.address6}/{PREFIX6}", "dev", "eth0",
            "nodad", check=False)
    _sh("ip", "link", "set", h.veth, "master", BRIDGE)
    _sh("ip", "link", "set", h.veth, "up")
    _sh("ip", "-n", h.netns, "link", "set", "lo", "up")
    _sh("ip", "-n", h.netns, "link", "set", "eth0", "up")


# ------------------------------------------------------------------ hosts

def _running(h):
    if h.engine == "docker":
        return staging_docker.running(h.name)
    return bool(_nspawn_pid(h))


def _nspawn_pid(h):
    """The PID of this host's systemd-nspawn, only if it is really ours and alive."""
    try:
        pid = int(h.pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if cmdline and cmdline[0].endswith(b"systemd-nspawn") and str(h.rootfs).encode() in cmdline:
        return pid
    return None


def _ssh_ready(h, timeout=0.5):
    try:
        with socket.create_connection((h.address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_until(condition, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise OpsError(f"timed out after {timeout:.0f}s waiting for {what}")


def _one_at_a_time(change):
    """Hosts are made and removed by one process at a time on this machine (two test lanes,
    two terminals): the image, the bridge and the access files are shared by all of them."""
    @functools.wraps(change)
    def locked(*args, **kwargs):
        try:
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            lock = open(STATE_DIR / ".lock", "w")
        except OSError:  # not root: the change itself says so
            return change(*args, **kwargs)
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return change(*args, **kwargs)
    return locked


def _replace(path, text):
    """Write a file that `ssh -F` or Fabric may be reading right now: whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def _write_access_files(hosts):
    """ssh_config + known_hosts for every host present: `ssh -F` and Fabric both read them."""
    entries, known = [], []
    for h in hosts:
        pub = h.host_key_pub
        if not pub.exists():
            continue
        key = " ".join(pub.read_text().split()[:2])
        known.append(f"{h.name},{h.address} {key}")
        entries.append(f"Host {h.name}\n    HostName {h.address}\n    User root\n"
                       f"    IdentityFile {key_path()}\n    IdentitiesOnly yes\n"
                       f"    UserKnownHostsFile {STATE_DIR / 'known_hosts'}\n"
                       f"    StrictHostKeyChecking yes\n")
    _replace(STATE_DIR / "known_hosts", "\n".join(known) + "\n")
    _replace(ssh_config_path(), "# Written by `fab staging.up`.\n" + "\n".join(entries))


def existing_hosts():
    root = STATE_DIR / "hosts"
    return sorted((Host(p.name) for p in root.iterdir() if NAME.match(p.name)),
                  key=lambda h: h.index) if root.is_dir() else []


def _start(h, image, release, init="systemd"):
    for sub in ("upper", "work", "merged"):
        (h.dir / sub).mkdir(parents=True, exist_ok=True)
    lower = str(image)
    if init == "upstart":
        lower = f"{staging_upstart.build_layer(IMAGE_DIR)}:{lower}"  # upstart's files on top
    if not os.path.ismount(h.rootfs):
        _sh("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={lower},upperdir={h.dir / 'upper'},workdir={h.dir / 'work'}", h.rootfs)
    root = h.rootfs
    (root / "etc/hostname").write_text(h.name + "\n")
    hostkey = root / "etc/ssh/ssh_host_ed25519_key"
    if not hostkey.exists():
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", hostkey)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(f"{key_path()}.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    _setup_netns(h)
    (h.dir / "release").write_text(release + "\n")
    (h.dir / "init").write_text(init + "\n")
    log = open(h.dir / "console.log", "ab")
    if init == "upstart":
        # --boot would pick the image's systemd: upstart is named as PID 1 instead. It has
        # no answer to nspawn's SIGTERM, so stopping the host ends it at once.
        boot = ["--kill-signal=SIGKILL", "--console=read-only", "-D", str(root),
                "/usr/sbin/init"]
    else:
        legacy = () if _unified_cgroups() else LEGACY_CGROUP_ARGS
        boot = ["--boot", "--console=read-only", "-D", str(root), *legacy]
    proc = subprocess.Popen(
        ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet",
         f"--network-namespace-path=/run/netns/{h.netns}", f"--machine={h.name}", *boot],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    h.pid_file.write_text(str(proc.pid))
    return proc


def _unified_cgroups():
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _start_docker(h, tag, release):
    """Boot a Docker host whose directory and engine marker _up_docker made."""
    (h.dir / "release").write_text(release + "\n")
    key = h.dir / "ssh_host_ed25519_key"
    if not key.exists():
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", key)
    staging_docker.start(h.name, h.address, tag, key, f"{key_path()}.pub")


# The end of a systemd host's boot. On a cgroup v1 machine (this one) systemd in a container
# now and then fails to put a unit's first process into its cgroup while it boots (status
# 219/CGROUP): seen on systemd-user-sessions, which leaves /run/nologin behind and so turns
# away every user but root over SSH. Such a unit is started again; other failures stay as
# they are, for the tests to see.
SETTLE_BOOT = """systemctl is-system-running --wait >/dev/null
for unit in $(systemctl list-units --failed --plain --no-legend | awk '{print $1}'); do
  [ "$(systemctl show -P ExecMainStatus "$unit")" = 219 ] || continue
  systemctl reset-failed "$unit"; systemctl start "$unit"
done
true"""


@_one_at_a_time
def up(count=1, log=print, release=DEFAULT_RELEASE, first=1, engine="nspawn", init="systemd"):
    """Make staging<first>..staging<first+count-1> running `release` and reachable over SSH;
    returns the hosts. engine: nspawn, or docker (containers from ops/staging/recipes/Dockerfile);
    init: systemd, or upstart (nspawn hosts only)."""
    _require_root()
    check_release(release)
    if engine not in ENGINES:
        raise OpsError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if init not in INITS:
        raise OpsError(f"init {init!r}: one of {', '.join(INITS)}")
    if init == "upstart" and (engine, release) != ("nspawn", DEFAULT_RELEASE):
        raise OpsError(f"init upstart: built for {DEFAULT_RELEASE} hosts booted with nspawn")
    hosts = [Host(f"staging{i}") for i in range(first, first + count)]
    for h in hosts:
        if h.dir.exists() and (h.release, h.engine, h.init) != (release, engine, init):
            raise OpsError(f"{h.name} runs {h.release} on {h.engine} with {h.init}, not "
                           f"{release} on {engine} with {init}: `fab staging.down` first, or "
                           "choose other hosts with --first")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    if not key_path().exists():
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "flask-ops-staging", "-f",
            key_path())
    if engine == "docker":
        return _up_docker(hosts, log, release)
    image = build_image(log, release)
    _ensure_bridge()
    started = {}
    for h in hosts:
        if _nspawn_pid(h):
            continue
        log(f"booting {h.name} at {h.address}" + (" (upstart)" if init == "upstart" else ""))
        started[h.name] = _start(h, image, release, init)

    def alive(h):
        # A host booted here is judged by its process handle: /proc/PID/cmdline can be read
        # before it shows systemd-nspawn, which made a booting host look dead.
        proc = started.get(h.name)
        return proc.poll() is None if proc else bool(_nspawn_pid(h))

    _write_access_files(existing_hosts())
    for h in hosts:
        wait_until(lambda: _ssh_ready(h) or not alive(h), 60, f"sshd on {h.name}")
        if not alive(h):
            raise OpsError(f"{h.name} did not boot; see {h.dir / 'console.log'}")
    for h in hosts:
        if init == "systemd":
            ssh(h, SETTLE_BOOT, timeout=60)
        else:  # the runlevel's jobs (rc, ssh) have run once sshd answers: rc is a task
            wait_until(lambda: "stop/waiting" in ssh(h, "initctl status rc", check=False).stdout,
                       60, f"runlevel 2 on {h.name}")
    return hosts


def _up_docker(hosts, log, release):
    rootfs = build_image(log, release)
    staging_docker.ensure_daemon(STATE_DIR)
    staging_docker.ensure_network()
    tag = staging_docker.image(rootfs, release)
    for h in hosts:
        if not staging_docker.running(h.name):
            h.dir.mkdir(parents=True, exist_ok=True)
            (h.dir / "engine").write_text("docker\n")  # before h.address is read
            log(f"booting {h.name} at {h.address} (docker)")
            _start_docker(h, tag, release)
    _write_access_files(existing_hosts())
    for h in hosts:
        wait_until(lambda: _ssh_ready(h) or not staging_docker.running(h.name), 90,
                   f"sshd on {h.name}")
        if not staging_docker.running(h.name):
            raise OpsError(f"{h.name} did not boot; see `docker logs "
                           f"{staging_docker.container(h.name)}`")
    for h in hosts:
        ssh(h, SETTLE_BOOT, timeout=90)
    return hosts


def ssh(h, command, timeout=30, check=True):
    """Run a command on a staging host with the system ssh client (setup and tests)."""
    return _sh("ssh", "-F", ssh_config_path(), "-o", "BatchMode=yes", "-o",
               "ConnectTimeout=5", h.name, command, timeout=timeout, check=check)


def _stop(h):
    if h.engine == "docker":
        staging_docker.remove(h.name)
        shutil.rmtree(h.dir, ignore_errors=True)
        return
    pid = _nspawn_pid(h)
    if pid:
        os.kill(pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
        try:
            wait_until(lambda: _nspawn_pid(h) is None, 20, f"{h.name} to power off")
        except OpsError:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: _nspawn_pid(h) is None, 10, f"{h.name} to exit")
    if os.path.ismount(h.rootfs):
        _sh("umount", "--lazy", h.rootfs)
    if Path("/run/netns", h.netns).exists():
        _sh("ip", "netns", "del", h.netns)
    _sh("ip", "link", "del", h.veth, check=False)
    shutil.rmtree(h.dir, ignore_errors=True)


@_one_at_a_time
def stop(name):
    """Remove one staging host (the others keep running)."""
    _require_root()
    _stop(host(name))
    _write_access_files(existing_hosts())


@_one_at_a_time
def down(log=print):
    """Remove every staging host, namespace, veth and process (the staging ACME server's
    too); the image cache stays."""
    _require_root()
    pebble.down()  # it runs on the bridge: stopped before the bridge goes
    for h in existing_hosts():
        log(f"removing {h.name}")
        _stop(h)
    if staging_docker.available():
        staging_docker.remove_all()
        staging_docker.stop_daemon(STATE_DIR)
    if bridge_is_up():
        _sh("ip", "link", "del", BRIDGE)
    for path in (ssh_config_path(), STATE_DIR / "known_hosts"):
        if path.exists():
            path.unlink()


def status():
    """One dict per known host: name, address, running, ssh."""
    return [{"name": h.name, "address": h.address, "running": _running(h),
             "ssh": _ssh_ready(h), "release": h.release, "engine": h.engine, "init": h.init}
            for h in existing_hosts()]
