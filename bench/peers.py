"""The peers of `fab deploy`, run the way their experts would, on our staging hosts.

Each peer gets the same job: the same app and rendered configs (`fab render`), the same
wheels, shipped as one archive built on this machine (the build counts in its time), an
offline venv, the switch, reloads, one health check through nginx. `run(tool, ...)` returns
the wall time of the whole tool process and what the tool said it changed.

Remote commands are counted the same way for every tool, ours included: SSH sessions the
host's sshd starts (LogLevel VERBOSE logs one line per exec, sftp or scp session).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ops import staging  # noqa: E402
from ops.build import build  # noqa: E402
from ops.build.release import tree_digest  # noqa: E402
from ops.targets import render  # noqa: E402

TOOLS = ("ansible", "pyinfra", "capistrano")
ANSIBLE = ROOT / ".venv-ansible/bin/ansible-playbook"
PYINFRA = ROOT / ".venv-pyinfra/bin/pyinfra"
PEERS = ROOT / "bench/peers"
# The tools run as in a user's shell. This machine's environment sets PYTHONDONTWRITEBYTECODE,
# which no user's does: every run of a Python tool (ours, Ansible's, pyinfra's) then compiled
# its modules from source again (about 0.15 s of each `fab deploy` here).
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def versions():
    """The peers' versions, for the report."""
    def first_line(cmd):
        try:
            return subprocess.run(cmd, text=True, capture_output=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "missing"
    return {"ansible": first_line([str(ANSIBLE), "--version"]).replace("ansible-playbook ", "ansible-core "),
            "pyinfra": first_line([str(PYINFRA), "--version"]),
            "capistrano": first_line(["cap", "--version"])}


def missing():
    """What `make bench-deps` has not installed yet."""
    need = {"ansible": ANSIBLE, "pyinfra": PYINFRA}
    gone = [tool for tool, path in need.items() if not path.exists()]
    return gone + ([] if shutil.which("cap") else ["capistrano"])


class Sessions:
    """SSH sessions started on a set of hosts, as their sshd logs them."""

    LINE = "Starting session:"

    def __init__(self, remotes):
        self.remotes = remotes
        for r in remotes:
            r.run("echo 'LogLevel VERBOSE' > /etc/ssh/sshd_config.d/flask-ops-bench.conf; "
                  "systemctl reload ssh", "bench: sshd logs sessions")

    def count(self):
        """Sessions so far, but for this bench's own connection (its port, from $SSH_CLIENT):
        its counting commands are not the tool's."""
        return sum(int(r.run(
            "port=$(echo $SSH_CLIENT | cut -d' ' -f2); journalctl -u ssh.service -o cat "
            f"--no-pager | grep '{self.LINE}' | grep -vc \" port $port \" || true",
            "bench: sessions").stdout.strip() or 0) for r in self.remotes)

    def measure(self, fn):
        """(result of fn, sessions fn started)."""
        before = self.count()
        result = fn()
        return result, self.count() - before


def job(s, work, hosts):
    """The variables every peer gets: what to ship where, and the local build's inputs."""
    cache = work.parent / f"cache-{s.app_name}"  # archives by release id, kept across runs
    source_id = tree_digest(s.source_dir)[:16]
    requirements = hashlib.sha256((Path(s.source_dir) / "requirements.txt").read_bytes()).hexdigest()[:16]
    rendered = work / "rendered"
    shutil.rmtree(rendered, ignore_errors=True)
    render.write_tree(render.render(s), rendered)
    (work / "wsgi.json").write_text(json.dumps(s.wsgi_spec.as_json()))
    return {
        "app": s.app_name, "base": s.base, "source": str(s.source_dir), "wsgi": "@" + str(work / "wsgi.json"),
        "release_id": source_id, "rendered": str(rendered), "collected": str(work / "collected"),
        "wheelhouse": str(build.wheelhouse(s)), "build_python": str(build.venv(s) / "bin/python"),
        "collect_driver": str(build.DRIVER), "server_name": s.server_names[0], "work": str(work),
        "cache": str(cache), "archive": str(cache / f"release-{source_id}.tar.gz"),
        "wheels_archive": str(cache / f"wheelhouse-{requirements}.tar.gz"),
        "requirements_digest": requirements, "hosts": list(hosts),
    }


def local_build(v):
    """What the Ansible playbook does on localhost, for the peers that have no such step:
    collect static files, archive the release and the wheelhouse (skipped when cached)."""
    cache, work = Path(v["cache"]), Path(v["work"])
    cache.mkdir(parents=True, exist_ok=True)
    if not Path(v["archive"]).exists():
        subprocess.run([v["build_python"], v["collect_driver"], v["source"], v["wsgi"], v["collected"]],
                       check=True, capture_output=True, env=USER_ENV)
        release = work / "release"
        shutil.rmtree(release, ignore_errors=True)
        shutil.copytree(v["source"], release)
        shutil.copy(f"{v['rendered']}{v['base']}/current/{v['app']}.wsgi", release)
        shutil.copytree(v["collected"], release / "collected_static")
        subprocess.run(["tar", "-czf", v["archive"], "-C", str(release), "."], check=True)
    if not Path(v["wheels_archive"]).exists():
        subprocess.run(["tar", "-czf", v["wheels_archive"], "-C", v["wheelhouse"], "."], check=True)


def _run(argv, env, cwd=None):
    out = subprocess.run(argv, env={**USER_ENV, **env}, cwd=cwd, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if out.returncode != 0:
        raise SystemExit(f"{Path(argv[0]).name} failed:\n{out.stdout[-4000:]}")
    return out.stdout


def ansible(v, work):
    (work / "vars.json").write_text(json.dumps(v))
    ssh = staging.ssh_config_path()
    (work / "inventory.ini").write_text("[app]\n" + "".join(
        f"{h} ansible_user=root ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='-F {ssh}'\n" for h in v["hosts"]))
    out = _run([str(ANSIBLE), "-i", str(work / "inventory.ini"), str(PEERS / "ansible/deploy.yml"),
                "-e", f"@{work / 'vars.json'}", "--forks", str(max(5, len(v["hosts"])))],
               {"ANSIBLE_PIPELINING": "True", "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_STDOUT_CALLBACK": "default"})
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", out.rsplit("PLAY RECAP", 1)[-1]))
    return f"changed={changed}"


def pyinfra(v, work):
    local_build(v)
    hosts = [(h, {"ssh_hostname": staging.host(h).address, "ssh_user": "root",
                  "ssh_key": str(staging.key_path()),
                  "ssh_known_hosts_file": str(staging.key_path().parent / "known_hosts"),
                  "ssh_strict_host_key_checking": "yes", **v}) for h in v["hosts"]]
    (work / "inventory.py").write_text(f"app = {hosts!r}\n")
    out = _run([str(PYINFRA), "-y", "--no-wait", str(work / "inventory.py"),
                str(PEERS / "pyinfra/deploy.py")], {"TERM": "dumb", "NO_COLOR": "1"})
    # pyinfra's results table: "Grand total  HOSTS  SUCCESS  ERROR  NO-CHANGE" ("-" for 0);
    # an operation that changed something counts as a success
    total = re.search(r"Grand total\s+\S+\s+(\S+)", out)
    return f"changed={total.group(1).replace('-', '0')}" if total else "changed=?"


def capistrano(v, work):
    local_build(v)
    (work / "vars.json").write_text(json.dumps(v))
    out = _run(["cap", "bench", "deploy"], {"FLASK_OPS_VARS": str(work / "vars.json"),
                                            "SSH_CONFIG": str(staging.ssh_config_path())},
               cwd=PEERS / "capistrano")
    return "no change" if "no change:" in out else "new release"


_SHARED = {}  # the SSH config with shared connections this process wrote: {"dir": Path}


def shared_ssh_config():
    """staging's SSH config with connections shared, as a user's ~/.ssh/config has it and as
    the Ansible peer runs (ControlMaster auto, ControlPersist 60 s): what `fab -S` reads, so
    flask-ops carries its commands over OpenSSH's master (ops.deploy.openssh). Its masters
    live in a directory of this process: a later run never meets one of a host since rebuilt."""
    import tempfile
    if "dir" not in _SHARED:
        _SHARED["dir"] = Path(tempfile.mkdtemp(prefix="fo-cm-", dir="/tmp"))
    path = _SHARED["dir"] / "ssh_config"
    path.write_text(staging.ssh_config_path().read_text() + "\nHost *\n    ControlMaster auto\n"
                    f"    ControlPath {_SHARED['dir']}/%C\n    ControlPersist 60s\n")
    return path


def stop_shared(hosts):
    """End this process's masters (`ssh -O exit`) and remove their directory."""
    if "dir" not in _SHARED:
        return
    for name in hosts:
        subprocess.run(["ssh", "-F", str(_SHARED["dir"] / "ssh_config"), "-O", "exit", name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    shutil.rmtree(_SHARED.pop("dir"), ignore_errors=True)


def ours(s, work, hosts, batch_size=1, shared=True):
    """`fab deploy` as a user types it, in the project (`-H` for one host; a fleet's roles
    are in its fabric.yaml). shared: with the SSH config that shares connections (`-S`);
    else Paramiko's own connection per run."""
    argv = [str(ROOT / ".venv/bin/fab"), *(["-S", str(shared_ssh_config())] if shared else []),
            *(["-H", hosts[0]] if not s.roles else []), "deploy",
            *([f"--batch-size={batch_size}"] if batch_size > 1 else [])]
    out = _run(argv, {}, cwd=work)
    return "no change" if "no change:" in out else "deployed"


RUNNERS = {"ansible": ansible, "pyinfra": pyinfra, "capistrano": capistrano}


def run(tool, s, work, hosts):
    """(seconds, what the tool said): one deploy of s to hosts, the whole tool process timed
    (the peers' local build included)."""
    start = time.monotonic()
    if tool.startswith("flask-ops"):  # "flask-ops": one host at a time (the default);
        # "flask-ops/canary": the canary alone, then every other host at once;
        # "flask-ops/paramiko": without the shared SSH connection (Paramiko's, one per run)
        said = ours(s, work, hosts, len(hosts) if tool.endswith("/canary") else 1,
                    shared=not tool.endswith("/paramiko"))
    else:
        said = RUNNERS[tool](job(s, work, hosts), work)
    return time.monotonic() - start, said


def project(root, greeting, app, roles=None, same_job=True):
    """A throwaway copy of sample_app saying `greeting`, described in its own fabric.yaml
    (the sample's, with its own app name and server name): what `fab` reads. same_job: the
    peers' job, one health check after the switch (the sample's own smoke pages and its
    1.5 s stream dropped; flask-ops' built-in checks still run). An existing project at
    `root` is edited in place, as a user edits theirs: only a file whose text changes is
    written (a deploy of the same text again is a no-op in the same directory)."""
    import yaml
    from ops.config import settings
    if not (root / "sample_app").exists():
        shutil.copytree(ROOT / "sample_app", root / "sample_app",
                        ignore=shutil.ignore_patterns("__pycache__", "build"))
    _write_if_changed(root / "sample_app/app.py", (ROOT / "sample_app/app.py").read_text()
                      .replace("Hello, World!", greeting, 1))
    raw = {**yaml.safe_load((ROOT / "fabric.yaml").read_text())["deploy"],
           "app_name": app, "server_names": [f"{app}.test"], **({"roles": roles} if roles else {})}
    if same_job:
        for key in ("smoke", "smoke_stream", "streaming"):
            raw.pop(key, None)
    _write_if_changed(root / "fabric.yaml", yaml.safe_dump({"deploy": raw}))
    _write_if_changed(root / "fabfile.py", "from ops.tasks import ns  # noqa: F401\n")
    return settings.load(raw, project_root=root)


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
