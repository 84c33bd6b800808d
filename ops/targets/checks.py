"""Each rendered file checked by its own server's checker on this machine, before it can go
live: each role's `check_here` (the front servers check the sites inside this machine's whole
main config, rewritten as on the target by ops/scripts/candidate_main.py), the entry module
compiled, and the app's env file followed from the init unit to the app.
"""

import dataclasses
import re
import tempfile
from pathlib import Path

from ..errors import CheckError
from . import appservers, checkrun, frontservers, inits, stacks, templating
# Certificates the configs name that exist only on a target: the host's self-signed one
# (Apache's catch-all on 443) and the site's own (settings.tls_cert, tls_key).
SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")


def check_wsgi(files, workdir):
    for f in files:
        try:
            compile(f.content, f.path, "exec")
        except SyntaxError as exc:
            raise CheckError("python compile", f"{f.path}: {exc}") from None


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


# Each file kind's checker on this machine, in the order they run: the front servers', the
# entry module's, the app server's, the init systems'. A role adds its own `check_here`.
CHECKERS = {
    templating.NGINX: frontservers.Nginx().check_here,
    templating.APACHE: frontservers.Apache().check_here,
    templating.WSGI: check_wsgi,
    templating.UWSGI: appservers.Uwsgi().check_here,
    templating.SYSTEMD: inits.Systemd().check_here,
    templating.UPSTART: inits.Upstart().check_here,
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
                except (checkrun.MissingChecker, FileNotFoundError) as exc:
                    if skipped is None:
                        raise
                    skipped.append(str(exc) if isinstance(exc, checkrun.MissingChecker) else
                                   f"{kind}: {exc.filename} is missing here")
                    continue
                passed.append(kind)
        if settings is not None and any(f.kind == templating.WSGI for f in files):
            passed.append(check_env_reaches_app(files, settings))
    return passed
