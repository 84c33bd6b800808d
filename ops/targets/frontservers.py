"""Front servers: the program on port 80/443 (nginx, Apache). One object per server owns what
differs between them: its config tree, packages, provisioning script, the checker run on a
whole candidate config, how it reloads (through the host's init system) and its log files.

A stack (ops.targets.stacks) pairs one of these with an app server (ops.targets.appservers).
"""

import shlex

from .. import scripts
from . import templating as t

q = shlex.quote

# nginx's server_names_hash_bucket_size: its default (64) refuses a server name longer than
# about 55 characters; provision sets this (front_nginx.sh) unless the host sets its own.
NAMES_HASH_BUCKET = 256


class FrontServer:
    # name: its service (and package, and /var/log directory); kind: its templates' folder
    # and the file kind of its sites (templating.NGINX, templating.APACHE).
    name = kind = etc = main_conf = provision_script = ""
    packages = ()
    # Whether a generator response reaches the client chunk by chunk only under the
    # `streaming` paths (nginx buffers every other uwsgi/proxy response).
    streams_only_listed = False

    @property
    def sites_available(self):
        return f"{self.etc}/sites-available"

    @property
    def sites_enabled(self):
        return f"{self.etc}/sites-enabled"

    def site_path(self, name):
        return f"{self.sites_available}/{name}"

    @staticmethod
    def catchall_name(s):
        return f"000-flask-ops-catchall-{s.listen_port}.conf"

    def catchall_file(self, s):
        """The host's default site (shared by every app): unknown names refused, ACME
        challenges answered."""
        return t.RenderedFile(self.site_path(self.catchall_name(s)),
                              t.render(f"{self.kind}/catchall.conf.j2", s), self.kind)

    def log_files(self, s):
        """This site's access and error logs."""
        return [f"/var/log/{self.name}/{s.app_name}.access.log",
                f"/var/log/{self.name}/{s.app_name}.error.log"]

    # -- checks
    def check_in_context(self, cand, names, add_sites):
        """Candidate sites dir = every enabled site but ours (`names`), then `add_sites` lines
        put ours in; the host's main config pointed at it; the server's checker on that."""
        return ([scripts.command("candidate_sites.sh", self.sites_enabled, f"{cand}/sites", *names)]
                + list(add_sites)
                + [scripts.command("candidate_main.py", self.kind, self.main_conf,
                                   f"{cand}/sites", f"{cand}/main.conf"),
                   " ".join(q(a) for a in self.test_command(f"{cand}/main.conf")) + " 2>&1"])

    @staticmethod
    def test_command(main_conf):
        """The server's own checker on a whole main config (argv)."""
        raise NotImplementedError

    # -- service
    def reload(self, init):
        """Lines that reload the server's config, the way the host's init system does it."""
        return [init.service("reload", self.name)]

    # -- provision
    def provision_lines(self, s, init):
        return [scripts.command(self.provision_script, init.name)]

    def provision_dirs(self, s):
        return []

    def provisioned_files(self):
        """Files this server's configs rely on that only provision puts on a host."""
        return []


class Nginx(FrontServer):
    name, kind, etc, main_conf = "nginx", t.NGINX, "/etc/nginx", "/etc/nginx/nginx.conf"
    packages = ("nginx", "ssl-cert")
    provision_script = "front_nginx.sh"
    streams_only_listed = True

    @staticmethod
    def test_command(main_conf):
        return ["nginx", "-t", "-q", "-c", main_conf]

    def reload(self, init):
        # nginx_reload.sh: the checker first, then the reload, and a start if it was down.
        return [scripts.command("nginx_reload.sh", init.name)]

    def provision_lines(self, s, init):
        return super().provision_lines(s, init) + [
            scripts.command("ensure_nginx_names.sh", str(NAMES_HASH_BUCKET))]

    def provision_dirs(self, s):
        # its cache; the app's own directory of configs outside releases (the app server's
        # ini, the balancer's candidate, the maintenance flag)
        return [("/var/cache/nginx", "root", "root", "755"),
                (f"/etc/flask-ops/{s.app_name}", "root", "root", "755")]


class Apache(FrontServer):
    name, kind, etc, main_conf = "apache2", t.APACHE, "/etc/apache2", "/etc/apache2/apache2.conf"
    # ssl-cert: the self-signed certificate of the catch-all's 443 virtual host.
    packages = ("apache2", "ssl-cert")
    provision_script = "front_apache.sh"

    @staticmethod
    def test_command(main_conf):
        # apache2ctl reads /etc/apache2/envvars (APACHE_LOG_DIR, APACHE_RUN_USER, ...) first.
        return ["apache2ctl", "-t", "-f", main_conf]

    def provisioned_files(self):
        # The catch-all's 443 virtual host needs mod_ssl and the host's self-signed pair.
        return [f"/etc/apache2/mods-enabled/{m}.load" for m in ("wsgi", "headers", "ssl", "http2",
                                                                "rewrite", "unique_id")] + [
            "/etc/ssl/private/ssl-cert-snakeoil.key"]
