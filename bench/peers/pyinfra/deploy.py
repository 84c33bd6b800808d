"""The same job as `fab deploy`, written the way a pyinfra 3 user would, for
bench/deploy_vs_peers.py: ship ONE archive of the release (built locally by the bench, the
same one the Ansible peer builds) and one of the wheelhouse, install dependencies offline
into a venv, install the same rendered configs (from `fab render`), switch `current`,
reload only what changed, check /healthz through nginx.

Tuned, and why (what an experienced pyinfra user does):
- `files.put` compares the remote file's hash first: an archive already there is not sent;
- unpacking and `pip install` are guarded by facts (the release's entry file, a marker per
  requirements digest), so an unchanged release is a no-op that pyinfra reports as such;
- reloads and the health check run only `_if` an operation before them changed something
  (pyinfra's handlers).

    pyinfra -y inventory.py deploy.py   (the bench writes inventory.py with the host data)
"""

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

d = host.data
app, base = d.app, d.base
release_dir = f"{base}/releases/{d.release_id}"
archives = f"{base}/shared/archives"
venv = f"{base}/shared/venvs/pyinfra"
wheels = f"{base}/shared/wheelhouse/pyinfra"

files.directory(name="Archives directory", path=archives, mode="755")
shipped = files.put(name="Ship the release archive", src=d.archive,
                    dest=f"{archives}/release-{d.release_id}.tar.gz")
if not host.get_fact(File, path=f"{release_dir}/{app}.wsgi"):
    server.shell(name="Unpack the release", commands=[
        f"rm -rf {release_dir}.partial && mkdir -p {release_dir}.partial",
        f"tar -xzf {archives}/release-{d.release_id}.tar.gz -C {release_dir}.partial",
        f"mv {release_dir}.partial {release_dir}"])

files.put(name="Ship the wheelhouse archive", src=d.wheels_archive,
          dest=f"{archives}/wheelhouse-{d.requirements_digest}.tar.gz")
marker = f"{venv}/.installed-{d.requirements_digest}"
if not host.get_fact(File, path=marker):
    server.shell(name="Venv with dependencies installed offline", commands=[
        f"mkdir -p {wheels} && tar -xzf {archives}/wheelhouse-{d.requirements_digest}.tar.gz -C {wheels}",
        f"test -x {venv}/bin/python || /usr/bin/python3 -m venv {venv}",
        f"{venv}/bin/pip install --no-index --disable-pip-version-check --find-links {wheels} "
        f"-r {release_dir}/requirements.txt",
        f"touch {marker}"])
files.link(name="Link the venv into the release", path=f"{release_dir}/venv", target=venv)

ini = files.put(name="uWSGI ini", src=f"{d.rendered}/etc/flask-ops/{app}/uwsgi.ini",
                dest=f"/etc/flask-ops/{app}/uwsgi.ini", mode="644")
units = [files.put(name=f"systemd unit {unit}", src=f"{d.rendered}/etc/systemd/system/{unit}",
                   dest=f"/etc/systemd/system/{unit}", mode="644")
         for unit in (f"{app}-uwsgi.socket", f"{app}-uwsgi.service")]
sites = []
for site in (f"{app}.conf", "000-flask-ops-catchall-80.conf"):
    sites.append(files.put(name=f"nginx site {site}",
                           src=f"{d.rendered}/etc/nginx/sites-available/{site}",
                           dest=f"/etc/nginx/sites-available/{site}", mode="644"))
    sites.append(files.link(name=f"Enable {site}", path=f"/etc/nginx/sites-enabled/{site}",
                            target=f"/etc/nginx/sites-available/{site}"))
switched = files.link(name="Switch current to the release", path=f"{base}/current",
                      target=release_dir)

systemd.daemon_reload(name="systemd daemon-reload", _if=any_changed(*units))
for unit in (f"{app}-uwsgi.socket", f"{app}-uwsgi"):
    systemd.service(name=f"Start {unit}", service=unit, running=True, enabled=True)
systemd.service(name="Restart uWSGI (its unit changed)", service=f"{app}-uwsgi",
                restarted=True, _if=any_changed(*units))
systemd.service(name="Reload uWSGI (new release or ini)", service=f"{app}-uwsgi",
                reloaded=True, _if=any_changed(ini, switched))
server.shell(name="Check and reload nginx", commands=["nginx -t -q && systemctl reload nginx"],
             _if=any_changed(*sites))
server.shell(name="Health check through nginx", _if=any_changed(shipped, ini, switched, *units, *sites),
             commands=[
    "for i in $(seq 50); do "
    f"curl -fsS -H 'Host: {d.server_name}' http://127.0.0.1/healthz | grep -q '\"{release_dir}\"' "
    "&& exit 0; sleep 0.2; done; exit 1"])
