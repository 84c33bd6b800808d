"""Prepare a host for the app: packages, the app's user, directories, the front server.

Idempotent: every line checks before it changes, and says `changed: ...` when it did.
"""

from . import plan

PACKAGES = {
    "nginx-uwsgi": ["nginx", "uwsgi-core", "uwsgi-plugin-python3", "python3-venv"],
    "apache-modwsgi": ["apache2", "libapache2-mod-wsgi-py3", "python3-venv"],
}
q = plan.q
GENERATE = "import secrets, sys; print(sys.argv[1] + '=' + secrets.token_hex(32))"


def provision_script(s):
    base, shared, user, group = s.base, s.shared, s.app_user, s.group
    packages = " ".join(q(p) for p in PACKAGES[s.stack])
    lines = [
        "set -e",
        f"missing=$(for p in {packages}; do dpkg-query -W -f='${{Status}}' $p 2>/dev/null | "
        "grep -q 'install ok installed' || echo $p; done)",
        'if [ -n "$missing" ]; then',
        "  export DEBIAN_FRONTEND=noninteractive",
        "  apt-get install -y -q $missing >/tmp/flask-ops-apt.log 2>&1 || { echo "
        "\"cannot install:\" $missing \"(see /tmp/flask-ops-apt.log on the host; an offline host "
        "needs them preinstalled)\" >&2; exit 1; }",
        '  echo "changed: installed" $missing',
        "fi",
        f"getent group {q(group)} >/dev/null || {{ groupadd --system {q(group)}; "
        f"echo {q('changed: created group ' + group)}; }}",
        f"id -u {q(user)} >/dev/null 2>&1 || {{ useradd --system --gid {q(group)} "
        f"--home-dir {q(base)} --no-create-home --shell /usr/sbin/nologin {q(user)}; "
        f"echo {q('changed: created user ' + user)}; }}",
    ]
    # Root owns everything the deploy executes (releases, venvs, wheels): the app user can
    # read it but not change what root later runs. The app writes only to shared/data.
    dirs = [(base, "root", "root", "755"), (s.releases, "root", "root", "755"),
            (shared, "root", "root", "755"), (f"{shared}/venvs", "root", "root", "755"),
            (f"{shared}/wheelhouse", "root", "root", "755"),
            (plan.state_dir(s), "root", "root", "700"),
            (f"{shared}/data", user, group, "750"), (f"{shared}/run", user, group, "750")]
    if s.stack == "nginx-uwsgi":
        dirs.append(("/var/cache/nginx", "root", "root", "755"))
        dirs.append((f"/etc/flask-ops/{s.app_name}", "root", "root", "755"))
    for path, owner, grp, mode in dirs:
        lines.append(
            f"if [ \"$(stat -c '%U:%G %a' {q(path)} 2>/dev/null)\" != {q(f'{owner}:{grp} {mode}')} ]; "
            f"then install -d -o {q(owner)} -g {q(grp)} -m {mode} {q(path)}; "
            f"echo {q(f'changed: {path} ({owner}:{grp} {mode})')}; fi")
    # Secrets are generated on the host and never leave it: only their names are printed.
    env = f"{shared}/env"
    lines.append(f"[ -f {q(env)} ] || {{ (umask 077; : > {q(env)}); chown {q(user + ':root')} {q(env)}; "
                 f"echo {q(f'changed: created {env} (0600, {user})')}; }}")
    for name in ("SECRET_KEY",) + tuple(s.secrets):
        lines.append(
            f"grep -q {q('^' + name + '=')} {q(env)} || {{ python3 -c {q(GENERATE)} {q(name)} "
            f">> {q(env)}; echo {q(f'changed: generated {name} in {env}')}; }}")
    if s.stack == "nginx-uwsgi":
        lines += [
            "[ ! -e /etc/nginx/sites-enabled/default ] || { rm -f /etc/nginx/sites-enabled/default; "
            "echo 'changed: disabled the stock nginx site'; }",
            "! systemctl is-enabled --quiet apache2 2>/dev/null || { systemctl disable --now "
            "--quiet apache2; echo 'changed: disabled apache2 (nginx serves port 80)'; }",
            "systemctl is-enabled --quiet nginx || { systemctl enable --quiet nginx; "
            "echo 'changed: enabled nginx'; }",
            "systemctl is-active --quiet nginx || { systemctl start nginx; echo 'changed: started nginx'; }",
        ]
    else:
        lines += [
            "apache_changed=",
            "[ ! -e /etc/apache2/sites-enabled/000-default.conf ] || { a2dissite -q 000-default; "
            "apache_changed=1; echo 'changed: disabled the stock apache site'; }",
            "for m in wsgi headers; do [ -e /etc/apache2/mods-enabled/$m.load ] || "
            "{ a2enmod -q $m >/dev/null; apache_changed=1; echo \"changed: enabled mod_$m\"; }; done",
            "! systemctl is-enabled --quiet nginx 2>/dev/null || { systemctl disable --now "
            "--quiet nginx; echo 'changed: disabled nginx (apache serves port 80)'; }",
            "systemctl is-enabled --quiet apache2 || { systemctl enable --quiet apache2; "
            "echo 'changed: enabled apache2'; }",
            "systemctl is-active --quiet apache2 || { systemctl start apache2; "
            "echo 'changed: started apache2'; }",
            "[ -z \"$apache_changed\" ] || systemctl restart apache2",
        ]
    return "\n".join(lines)


def provision(s, remote):
    """Run the provision script; returns the `changed:` lines (empty when nothing changed)."""
    result = remote.run(provision_script(s), "provision")
    return [line[len("changed: "):] for line in result.stdout.splitlines()
            if line.startswith("changed: ")]
