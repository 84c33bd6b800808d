"""Prepare a host for the app: packages, the app's user, directories, secrets, the front server.

Idempotent: each script checks before it changes, and says `changed: ...` when it did.
"""

import dataclasses

from .. import scripts
from ..targets import hostversions, stacks
from . import plan


def provision_script(s, catchall=True):
    """The whole provision (catchall=False: all but the host's default site, which is
    rendered for the server versions the host has once its packages are in)."""
    stack = stacks.of(s)
    # Root owns everything the deploy executes (releases, venvs, wheels): the app user can
    # read it but not change what root later runs. The app writes only to shared/data.
    dirs = [(s.base, "root", "root", "755"), (s.releases, "root", "root", "755"),
            (s.shared, "root", "root", "755"), (f"{s.shared}/venvs", "root", "root", "755"),
            (f"{s.shared}/wheelhouse", "root", "root", "755"),
            (plan.state_dir(s), "root", "root", "700"),
            # The app's own: no other app's user can read or enter them.
            (s.data_dir, s.app_user, s.app_group, "750"),
            # upstart's socket directory (systemd makes /run/APP): the socket in it is
            # app:www-data 0660, so only the app, root and the web server's group may enter
            # it. The app's user owns it: uWSGI, no longer root by then, removes its socket
            # when it stops.
            (f"{s.shared}/run", s.app_user, s.web_group, "750"),
            # ACME challenges (certbot --webroot) for every app on the host.
            ("/var/lib/flask-ops", "root", "root", "755"), (s.acme_webroot, "root", "root", "755"),
            (f"{s.acme_webroot}/.well-known", "root", "root", "755"),
            (f"{s.acme_webroot}/.well-known/acme-challenge", "root", "root", "755"),
            ] + stack.provision_dirs()
    # openssl: the deploy's facts read the served certificate with it.
    tls_packages = ("openssl",) + (("certbot",) if s.tls and s.tls.acme else ()) if s.tls else ()
    return plan.script([
        # Before anything changes: the base directory and the accounts are ours or new.
        scripts.command("ensure_ours.sh", s.base, s.app_user, s.app_group),
        scripts.command("ensure_packages.sh", *stack.packages, *tls_packages),
        scripts.command("ensure_account.sh", s.app_user, s.app_group, s.base),
        scripts.command("ensure_dirs.sh", *[part for d in dirs for part in d]),
        # Secrets are generated on the host and never leave it: only their names are printed.
        scripts.command("ensure_secrets.sh", s.env_file, s.app_user, *s.generated_secrets),
        *stack.provision_lines(),
        scripts.command("ensure_front_marker.sh", stack.front, stacks.FRONT_MARKER),
    ] + (catchall_lines(stack) if catchall else []))


def catchall_lines(stack):
    """The host's default site, when it has none yet: before the first deploy, a certificate's
    ACME challenge for a name no site serves must reach the webroot, not a closed port."""
    f = stack.catchall_file()
    name = f.path.rsplit("/", 1)[1]
    enabled = plan.q(f"{stack.sites_enabled}/{name}")
    return [f"if [ ! -e {enabled} ]; then",
            "  " + plan.write_line(f.path, f.content),
            "  " + plan.enable_line(stack.sites_enabled, f.path),
            "  " + " ".join(plan.q(a) for a in stack.test_command(stack.main_conf)) + " >/dev/null",
            *["  " + line for line in stack.reload(stack.front)],
            f"  echo 'changed: installed the default site {name}'",
            "fi"]


def provision(s, remote):
    """Run the provision script; returns the `changed:` lines (empty when nothing changed)."""
    result = remote.run(provision_script(s, catchall=False), "provision")
    # The servers it now has: the default site, and every later build, are rendered for
    # their versions (nginx 1.18 has no ssl_reject_handshake).
    facts = plan.parse_facts(remote.run(plan.facts_command(s), "facts").stdout, False)[0]
    versions = hostversions.versions_from_facts(facts)
    if versions:
        hostversions.remember(remote.name, versions)
    target = dataclasses.replace(s, target=hostversions.Target.for_versions(versions))
    default_site = remote.run(plan.script(catchall_lines(stacks.of(target))), "provision")
    return [line[len("changed: "):] for line in (result.stdout + default_site.stdout).splitlines()
            if line.startswith("changed: ")]
