"""Docker-backed staging hosts: the same systemd targets as the nspawn ones, as containers.

The image is built from ops/staging/recipes/Dockerfile on top of the staging root filesystem, imported
into Docker (no registry is needed). Each container runs systemd as PID 1 with only
CAP_SYS_ADMIN and CAP_SYS_PTRACE added (never --privileged), tmpfs on /run, the host's cgroups read-only, and an
address on a Docker network of its own in 198.19.0.0/24; its SSH host key and authorized key
are made here and mounted, so the SSH config is written like the nspawn hosts'.
When no Docker daemon answers, one is started here (there may be no systemd to start it) and
stopped again by `staging.down`.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..errors import OpsError

NETWORK, SUBNET, GATEWAY = "flask-ops-staging", "198.19.0.0/24", "198.19.0.1"
LABEL = "flask-ops.staging=1"
DOCKERFILE_DIR = Path(__file__).resolve().parent / "recipes"


def _docker(*args, check=True, timeout=600, **kwargs):
    proc = subprocess.run(["docker", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise OpsError(f"docker {' '.join(map(str, args))} failed:\n{proc.stdout.strip()[-2000:]}")
    return proc


def available():
    return shutil.which("docker") is not None and shutil.which("dockerd") is not None


def _answers():
    try:
        return _docker("info", check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_daemon(state_dir):
    """A Docker daemon that answers: the machine's own, else one started here."""
    if not available():
        raise OpsError("docker is missing: run `make docker-deps` (Debian's docker.io)")
    if _answers():
        return
    run = state_dir / "docker"
    run.mkdir(parents=True, exist_ok=True)
    log = open(run / "dockerd.log", "ab")
    # No iptables rules and no default bridge: containers reach only the network made below,
    # and nothing on this machine is rewritten.
    proc = subprocess.Popen(["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none",
                             f"--pidfile={run / 'dockerd.pid'}"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (run / "started-here").write_text(str(proc.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OpsError(f"dockerd exited ({proc.returncode}); see {run / 'dockerd.log'}")
        if _answers():
            return
        time.sleep(0.5)
    raise OpsError(f"dockerd did not answer within 60s; see {run / 'dockerd.log'}")


def stop_daemon(state_dir):
    """Stop the daemon ensure_daemon started (never the machine's own)."""
    marker = state_dir / "docker" / "started-here"
    try:
        pid = int(marker.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        marker.unlink(missing_ok=True)
        return
    if cmdline.split(b"\0")[0].endswith(b"dockerd"):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    marker.unlink(missing_ok=True)


def _alive(pid):
    """Whether pid still runs. A dockerd this process started stays a zombie until reaped:
    reap it (it has exited), else each stop waited the whole 30 s."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # started by another process (an earlier fab staging.up)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ensure_network():
    if _docker("network", "inspect", NETWORK, check=False).returncode != 0:
        _docker("network", "create", "--driver", "bridge", "--subnet", SUBNET, "--gateway",
                GATEWAY, "--label", LABEL, NETWORK)


def image(rootfs, release):
    """The staging image: the root filesystem imported, then recipes/Dockerfile on top."""
    digest = hashlib.sha256((str(rootfs) + (DOCKERFILE_DIR / "Dockerfile").read_text())
                            .encode()).hexdigest()[:12]
    base, tag = f"flask-ops/staging-base:{rootfs.name}", f"flask-ops/staging:{release}-{digest}"
    if _docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    if _docker("image", "inspect", base, check=False).returncode != 0:
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "--change", "CMD [\"/sbin/init\"]", "-",
                                   base], stdin=tar.stdout, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise OpsError(f"docker import of {rootfs} failed:\n{imported.stdout[-2000:]}")
    _docker("build", "--network", "none", "--label", LABEL, "--build-arg", f"BASE={base}",
            "-t", tag, str(DOCKERFILE_DIR))
    for ref in _docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split():
        if ref.startswith(f"flask-ops/staging:{release}-") and ref != tag:
            _docker("rmi", "-f", ref, check=False)  # built from an older image or Dockerfile
    return tag


def container(name):
    return f"flask-ops-{name}"


def running(name):
    proc = _docker("inspect", "-f", "{{.State.Running}}", container(name), check=False, timeout=30)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def start(name, address, tag, host_key, authorized_keys):
    """Boot one container with systemd as PID 1 (its own host key mounted)."""
    _docker("rm", "-f", container(name), check=False)
    _docker("run", "-d", "--name", container(name), "--hostname", name, "--label", LABEL,
            "--network", NETWORK, "--ip", address,
            # SYS_PTRACE: root reads /proc/PID/cwd of the app's (non-dumpable) processes,
            # which is how verify proves they run the new release; any VM's root can.
            "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE", "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            "-v", f"{host_key}:/etc/ssh/ssh_host_ed25519_key:ro",
            "-v", f"{host_key}.pub:/etc/ssh/ssh_host_ed25519_key.pub:ro",
            "-v", f"{authorized_keys}:/root/.ssh/authorized_keys:ro", tag)


def remove(name):
    _docker("rm", "-f", container(name), check=False)


def remove_all():
    """Every container and the network this toolkit made (by its label). The images stay,
    as the root filesystems' cache does: the next staging.up starts in seconds."""
    if not available() or not _answers():
        return
    ids = _docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
    if ids:
        _docker("rm", "-f", *ids, check=False)
    if _docker("network", "inspect", NETWORK, check=False).returncode == 0:
        _docker("network", "rm", NETWORK, check=False)
