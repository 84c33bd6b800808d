"""Each rendered file checked by its own server's checker, before it can go live.

The candidate-config rewrite is one script (ops/scripts/candidate_main.py) used here and on
the target: the new site files are checked inside the host's whole server config, in
place of the live ones, without touching what is live.
"""

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from .. import scripts
from ..errors import CheckError, OpsError
from ..scripts import candidate_main
from . import appservers, frontservers, inits, stacks, templating, upstart

q = shlex.quote

APACHE_MODULES = (("wsgi_module", "mod_wsgi.so"), ("headers_module", "mod_headers.so"),
                  ("socache_shmcb_module", "mod_socache_shmcb.so"), ("ssl_module", "mod_ssl.so"),
                  ("http2_module", "mod_http2.so"), ("rewrite_module", "mod_rewrite.so"))
# Certificates the configs name that exist only on a target: the host's self-signed one
# (Apache's catch-all on 443) and the site's own (settings.tls_cert, tls_key).
SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")


def nginx_candidate_main(live_main, site_dir, prelude=""):
    """The live nginx.conf with its sites-enabled include pointed at site_dir."""
    try:
        return candidate_main.nginx(live_main, site_dir, prelude)
    except candidate_main.NoSitesInclude as exc:
        raise OpsError(str(exc)) from None


def apache_candidate_main(live_main, site_dir, load_modules=False):
    """The live apache2.conf with its sites-enabled include pointed at site_dir.

    load_modules adds mod_wsgi/mod_headers when the host has not enabled them (local checks
    only: on a target, provisioning enables them and the check must see the real state).
    """
    prelude = "".join(f"<IfModule !{name}>\n    LoadModule {name} /usr/lib/apache2/modules/{so}\n"
                      f"</IfModule>\n" for name, so in APACHE_MODULES) if load_modules else ""
    try:
        return candidate_main.apache(live_main, site_dir, prelude)
    except candidate_main.NoSitesInclude as exc:
        raise OpsError(str(exc)) from None


# ---------------------------------------------------------------- local execution

def isolated(argv, isolate=(), users=(), workdir=None):
    """argv wrapped to run in a private mount namespace (when root), leaving no trace.

    isolate: directories covered by an empty tmpfs, each with an empty nginx/ inside (nginx
    creates log files and cache directories even for -t). users: (user, group) accounts that
    exist only on the target, added to private copies of /etc/passwd and /etc/group (written in
    workdir, which the caller removes) so the checker resolves them exactly as the target will.
    """
    if not (isolate or users) or os.geteuid() != 0 or not shutil.which("unshare"):
        return list(argv)
    steps = [f"mount -t tmpfs flask-ops-check {q(p)} && mkdir -p {q(p + '/nginx')}"
             for p in isolate if os.path.isdir(p)]
    for name, text in (("group", _group_with(users)), ("passwd", _passwd_with(users))):
        if text is not None and workdir is not None:
            copy = Path(workdir, name)
            copy.write_text(text)
            steps.append(f"mount --bind {q(str(copy))} /etc/{name}")
    script = " && ".join(steps + ['exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


FAKE_GID = 64999


def _group_with(users):
    """/etc/group plus the app groups it lacks (they exist only on the target); None when it
    lacks none."""
    import grp
    lines = []
    for _, group in users:
        try:
            grp.getgrnam(group)
        except KeyError:
            lines.append(f"{group}:x:{FAKE_GID}:")
    if not lines:
        return None
    return Path("/etc/group").read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _passwd_with(users):
    """/etc/passwd plus the (user, group) accounts it lacks; None when it lacks none."""
    import grp
    import pwd
    lines = []
    for user, group in users:
        try:
            pwd.getpwnam(user)
            continue
        except KeyError:
            pass
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            gid = FAKE_GID  # added to the private /etc/group by _group_with
        lines.append(f"{user}:x:64999:{gid}::/nonexistent:/usr/sbin/nologin")
    if not lines:
        return None
    return Path("/etc/passwd").read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n"


class MissingChecker(OpsError):
    """This machine lacks a server (or its main config) whose checker a file needs."""


def _run(argv, checker, isolate=(), users=(), workdir=None):
    if not shutil.which(argv[0]):
        raise MissingChecker(f"{checker}: {argv[0]} is not installed here")
    proc = subprocess.run(isolated(argv, isolate, users, workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise CheckError(checker, proc.stdout)
    return proc.stdout


def _write(files, root):
    paths = []
    for f in files:
        path = Path(root) / PurePosixPath(f.path).name
        path.write_text(f.content)
        paths.append(str(path))
    return paths


def check_nginx(files, workdir):
    sites = Path(workdir, "nginx-sites")
    sites.mkdir()
    _write(files, sites)
    main = Path(workdir, "nginx.conf")
    live = Path(frontservers.Nginx.main_conf).read_text()
    # What provision adds to a host's http block (front_nginx.sh), when this machine lacks it.
    conf_d = "".join(p.read_text(errors="replace") for p in Path("/etc/nginx/conf.d").glob("*.conf"))
    prelude = "" if "server_names_hash_bucket_size" in live + conf_d else \
        f"server_names_hash_bucket_size {frontservers.NAMES_HASH_BUCKET};\n"
    main.write_text(nginx_candidate_main(live, sites, prelude))
    return _run(frontservers.Nginx.test_command(str(main)), "nginx -t", isolate=("/var/log", "/var/cache"))


def check_apache(files, workdir, users=()):
    sites = Path(workdir, "apache-sites")
    sites.mkdir()
    _write([f for f in files if f.kind == templating.APACHE], sites)
    main = Path(workdir, "apache2.conf")
    main.write_text(apache_candidate_main(Path(frontservers.Apache.main_conf).read_text(), sites,
                                          load_modules=True))
    return _run(frontservers.Apache.test_command(str(main)), "apache2ctl -t", users=users, workdir=workdir)


def check_wsgi(files, workdir):
    for f in files:
        try:
            compile(f.content, f.path, "exec")
        except SyntaxError as exc:
            raise CheckError("python compile", f"{f.path}: {exc}") from None


def check_uwsgi(files, workdir):
    for path in _write(files, workdir):
        _run(appservers.check_command(path), "uwsgi (strict)")


def check_systemd(files, workdir):
    # the same script the deploy runs on the host: any output from the verifier fails. All
    # together: the app's service requires its socket unit.
    _run(["bash", "-c", scripts.text("systemd_verify.sh"), "systemd_verify.sh",
          *_write(files, workdir)], "systemd-analyze verify")


def check_upstart(files, workdir):
    for f in files:
        try:
            upstart.check(f.content)
        except upstart.UpstartSyntaxError as exc:
            raise CheckError("upstart job check", f"{f.path}: {exc}") from None


def check_env_reaches_app(files, settings):
    """The app's env file (SECRET_KEY, `env:`, `secrets:`) is loaded on every path that
    starts the app: init unit -> uWSGI ini -> entry module, or Apache's site -> entry module.
    Neither upstart nor mod_wsgi has an EnvironmentFile=, so this is where it would be lost."""
    by_path = {f.path: f for f in files}
    entry = by_path.get(settings.wsgi_file)
    env_file = f"{settings.shared}/env"
    if entry is None or f'ENV_FILE = "{env_file}"' not in entry.content \
            or "\nload_env(ENV_FILE)\n" not in entry.content:
        raise CheckError("app environment", f"the WSGI entry {settings.wsgi_file} does not load "
                         f"{env_file}")
    units = [f for f in files if f.kind in (templating.SYSTEMD, templating.UPSTART)]
    app_units = set(inits.of(settings).unit_paths(settings).values())
    app_unit = inits.of(settings).unit_file_for(settings.service)
    for unit in [u for u in units if u.path not in app_units]:  # workers: the release's runner
        if not re.search(rf" {re.escape(settings.run_file)} (--stop-timeout [0-9]+ )?-- ",
                         unit.content):
            raise CheckError("app environment", f"{unit.path} does not start its worker through "
                             f"{settings.run_file}, so it would run without {env_file}")
    app_server = stacks.app_server_of(settings.stack)
    for unit in [u for u in units if u.path == app_unit]:
        lost = app_server.loses_env(settings, unit, by_path)
        if lost:
            raise CheckError("app environment", lost)
    sites = [f for f in files if f.kind == templating.APACHE and "WSGIScriptAlias" in f.content]
    for site in sites:
        if settings.wsgi_file not in site.content:
            raise CheckError("app environment", f"{site.path} does not run {settings.wsgi_file}")
    return "app environment"


CHECKERS = {
    templating.NGINX: check_nginx,
    templating.APACHE: check_apache,
    templating.WSGI: check_wsgi,
    templating.UWSGI: check_uwsgi,
    templating.SYSTEMD: check_systemd,
    templating.UPSTART: check_upstart,
}


def self_signed(directory):
    """(cert path, key path) of a throwaway self-signed certificate written in directory."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flask-ops-check.invalid")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = Path(directory, "check-cert.pem"), Path(directory, "check-key.pem")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def with_local_certs(files, settings, workdir):
    """The front servers' configs with every certificate path that exists only on a target
    pointed at a throwaway certificate here: the checkers need a file to load."""
    pairs = [SNAKEOIL] + ([(settings.tls_cert, settings.tls_key)] if settings and settings.tls else [])
    cert, key = self_signed(workdir)
    out = []
    for f in files:
        content = f.content
        if f.kind in (templating.NGINX, templating.APACHE):
            for cert_path, key_path in pairs:
                content = content.replace(cert_path, cert).replace(key_path, key)
            if settings and settings.tls:
                content = content.replace(settings.lb_trust, cert)
        out.append(dataclasses.replace(f, content=content))
    return out


def check_local(files, settings=None, skipped=None):
    """Run every file's checker on this machine; raise CheckError on the first refusal.

    Returns the names of the checkers that passed, in order. skipped: a list that collects
    the checkers this machine cannot run ("nginx: nginx is not installed here") instead of
    failing on them (`fab check` on a laptop without the servers).
    """
    passed = []
    with tempfile.TemporaryDirectory(prefix="flask-ops-check-") as workdir:
        files = with_local_certs(files, settings, workdir)
        for kind, checker in CHECKERS.items():
            mine = [f for f in files if f.kind == kind]
            if mine:
                sub = Path(workdir, kind)
                sub.mkdir()
                try:
                    if kind == templating.APACHE and settings is not None:
                        checker(mine, sub, users=[(settings.app_user, settings.app_group)])
                    else:
                        checker(mine, sub)
                except (MissingChecker, FileNotFoundError) as exc:
                    if skipped is None:
                        raise
                    skipped.append(str(exc) if isinstance(exc, MissingChecker) else
                                   f"{kind}: {exc.filename} is missing here")
                    continue
                passed.append(kind)
        if settings is not None and any(f.kind == templating.WSGI for f in files):
            passed.append(check_env_reaches_app(files, settings))
    return passed
