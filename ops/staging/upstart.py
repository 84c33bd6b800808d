"""The upstart layer of a staging host: upstart 1.12.1 (Ubuntu 14.04's init) as PID 1.

Built once from the vendored sources (vendor/upstart, ops/staging/recipes/upstart/build.sh) into a small
directory that overlayfs puts above the Debian image: `/usr/sbin/init` is upstart's, sshd is
an upstart job (as on Ubuntu 14.04), and the packaged sysv services (nginx, apache2, dbus)
start from /etc/rcN.d through a `rc` job, which is what Ubuntu 14.04 did for them.
"""

import hashlib
import shutil
import subprocess
from pathlib import Path

from ..errors import OpsError

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "vendor" / "upstart"
BUILD_SCRIPT = Path(__file__).resolve().parent / "recipes" / "upstart" / "build.sh"
LAYER_VERSION = "2"  # bump when the layer's contents change

# Jobs of the staging host itself (the app's jobs are flask-ops' own, written by deploys).
JOBS = {
    # No mountall here: nspawn mounted /proc, /sys, /dev and /run already.
    "rc-sysinit.conf": """\
description "staging boot: straight to runlevel 2"
start on startup
task
console output
script
    mkdir -p /run/lock /run/sshd
    telinit 2
end script
""",
    # Ubuntu's rc job runs /etc/init.d/rc; Debian's image has no sysv-rc, so its work (the
    # runlevel's S links, in order) is here. A service with an upstart job is left to it.
    "rc.conf": """\
description "sysv services of the runlevel"
start on runlevel [0123456]
stop on runlevel [!$RUNLEVEL]
export RUNLEVEL
console output
task
script
    for link in /etc/rc$RUNLEVEL.d/S*; do
        [ -x "$link" ] || continue
        name=${link#/etc/rc$RUNLEVEL.d/S??}
        [ ! -e "/etc/init/$name.conf" ] || continue
        "$link" start || true
    done
end script
""",
    # Ubuntu 14.04's own ssh job.
    "ssh.conf": """\
description "OpenSSH server"
start on runlevel [2345]
stop on runlevel [!2345]
respawn
respawn limit 10 5
umask 022
pre-start script
    test -x /usr/sbin/sshd || { stop; exit 0; }
    mkdir -p -m0755 /run/sshd
end script
exec /usr/sbin/sshd -D
""",
}


def layer_path(image_dir):
    digest = hashlib.sha256(LAYER_VERSION.encode())
    for path in sorted(VENDOR.glob("*.tar.gz")) + [BUILD_SCRIPT]:
        digest.update(path.name.encode() + path.read_bytes())
    for name, text in sorted(JOBS.items()):
        digest.update(name.encode() + text.encode())
    return Path(image_dir) / f"upstart-{digest.hexdigest()[:12]}"


def build_layer(image_dir, log=print):
    """The cached upstart layer (about 30 s to build, once)."""
    path = layer_path(image_dir)
    if (path / "etc/flask-ops-upstart").exists():
        return path
    if not VENDOR.is_dir() or not any(VENDOR.glob("upstart-*.tar.gz")):
        raise OpsError(f"{VENDOR} has no upstart sources: the upstart host is built from them")
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"building {path.name} from {VENDOR.relative_to(REPO)} (about 30 s, once)")
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), str(VENDOR), str(tmp)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise OpsError(f"building upstart failed (`make system-deps` installs its build "
                       f"tools):\n{proc.stdout.strip()[-2000:]}")
    jobs = tmp / "etc/init"
    shutil.rmtree(jobs, ignore_errors=True)  # the bridges and Ubuntu's rc jobs: ours instead
    jobs.mkdir(parents=True)
    for name, text in JOBS.items():
        (jobs / name).write_text(text)
    shutil.rmtree(tmp / "usr/share/man", ignore_errors=True)
    (tmp / "var/log/upstart").mkdir(parents=True)  # the jobs' output (`console log`)
    (tmp / "etc/flask-ops-upstart").write_text(LAYER_VERSION + "\n")
    tmp.rename(path)
    for old in Path(image_dir).glob("upstart-*"):
        if old.name != path.name and not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)  # an older build of the layer
    return path
