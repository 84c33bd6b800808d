"""Prepare a host for the app: packages, the app's user, directories, secrets, the front server.

Idempotent: each script checks before it changes, and says `changed: ...` when it did.
"""

from . import plan, scripts, stacks


def provision_script(s):
    stack = stacks.of(s)
    # Root owns everything the deploy executes (releases, venvs, wheels): the app user can
    # read it but not change what root later runs. The app writes only to shared/data.
    dirs = [(s.base, "root", "root", "755"), (s.releases, "root", "root", "755"),
            (s.shared, "root", "root", "755"), (f"{s.shared}/venvs", "root", "root", "755"),
            (f"{s.shared}/wheelhouse", "root", "root", "755"),
            (plan.state_dir(s), "root", "root", "700"),
            # The app's own: no other app's user can read or enter them.
            (f"{s.shared}/data", s.app_user, s.app_group, "750"),
            # upstart's socket directory (systemd makes /run/APP): the socket in it is
            # app:www-data 0660, so only root and the web server's group may enter it.
            (f"{s.shared}/run", "root", s.web_group, "750")] + stack.provision_dirs()
    return plan.script([
        scripts.command("ensure_packages.sh", *stack.packages),
        scripts.command("ensure_account.sh", s.app_user, s.app_group, s.base),
        scripts.command("ensure_dirs.sh", *[part for d in dirs for part in d]),
        # Secrets are generated on the host and never leave it: only their names are printed.
        scripts.command("ensure_secrets.sh", s.env_file, s.app_user, *s.generated_secrets),
        scripts.command(stack.provision_script),
        scripts.command("ensure_front_marker.sh", stack.front, stacks.FRONT_MARKER),
    ])


def provision(s, remote):
    """Run the provision script; returns the `changed:` lines (empty when nothing changed)."""
    result = remote.run(provision_script(s), "provision")
    return [line[len("changed: "):] for line in result.stdout.splitlines()
            if line.startswith("changed: ")]
