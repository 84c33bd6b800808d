"""Front servers: the program on port 80/443 (nginx, Apache). One object per server owns what
differs between them: its config tree, packages, provisioning script, the checker run on a
whole candidate config, how it reloads (through the host's init system) and its log files.

A stack (ops.targets.stacks) pairs one of these with an app server (ops.targets.appservers).
"""

import shlex
from pathlib import Path

from .. import scripts
from ..errors import OpsError
from ..scripts import candidate_main
from . import checkrun, templating as t

q = shlex.quote

# nginx's server_names_hash_bucket_size: its default (64) refuses a server name longer than
# about 55 characters; provision sets this (front_nginx.sh) unless the host sets its own.
NAMES_HASH_BUCKET = 256


class FrontServer:
    # name: its service (and package, and /var/log directory); kind: its templates' folder
    # and the file kind of its sites (templating.NGINX, templating.APACHE).
    name = kind = etc = main_conf = provision_script = checker_name = ""
    packages = ()
    # Directories the checker writes to even when it only checks (covered while it runs).
    check_isolates = ()
    # Whether a generator response reaches the client chunk by chunk only under the
    # `streaming` paths (nginx buffers every other uwsgi/proxy response).
    streams_only_listed = False
    # The `nginx:` shapes it renders with a proxy tier in front of the app's (two tiers), and
    # with a cache in that tier; a server without them renders every shape as one tier.
    two_tier_shapes = caching_shapes = ()
    # Whether OCSP stapling needs DNS servers named in its config (nginx's `resolver`).
    ocsp_needs_resolvers = False

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

    def candidate_main(self, live_main, site_dir, prelude=""):
        """The live main config with its sites-enabled include pointed at site_dir (the same
        rewrite the target runs: scripts/candidate_main.py)."""
        try:
            return candidate_main.REWRITE[self.kind](live_main, site_dir, prelude)
        except candidate_main.NoSitesInclude as exc:
            raise OpsError(str(exc)) from None

    def check_here(self, files, workdir, users=()):
        """The server's checker on this machine: `files` as the only enabled sites of this
        machine's own main config. users: (user, group) accounts only the target has."""
        sites = Path(workdir, f"{self.kind}-sites")
        sites.mkdir()
        checkrun.write(files, sites)
        main = Path(workdir, Path(self.main_conf).name)
        main.write_text(self.candidate_main(Path(self.main_conf).read_text(), sites,
                                            self.local_prelude()))
        return checkrun.run(self.test_command(str(main)), self.checker_name, users=users,
                            workdir=workdir, isolate=self.check_isolates)

    def local_prelude(self):
        """Lines put before the sites when this machine's main config lacks what provision
        gives a host."""
        return ""

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
    two_tier_shapes, caching_shapes = ("proxy", "cache"), ("cache",)
    ocsp_needs_resolvers = True
    checker_name, check_isolates = "nginx -t", ("/var/log", "/var/cache")

    @staticmethod
    def test_command(main_conf):
        return ["nginx", "-t", "-q", "-c", main_conf]

    def local_prelude(self):
        # What provision adds to a host's http block (front_nginx.sh), when this machine lacks it.
        live = Path(self.main_conf).read_text()
        conf_d = "".join(p.read_text(errors="replace") for p in Path(self.etc, "conf.d").glob("*.conf"))
        return "" if "server_names_hash_bucket_size" in live + conf_d else \
            f"server_names_hash_bucket_size {NAMES_HASH_BUCKET};\n"

    def reload(self, init):
        # nginx_reload.sh: the reload, then a wait until no old worker accepts.
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
    checker_name = "apache2ctl -t"
    # The modules provision enables, loaded for a local check when this machine has not.
    MODULES = (("wsgi_module", "mod_wsgi.so"), ("headers_module", "mod_headers.so"),
               ("socache_shmcb_module", "mod_socache_shmcb.so"), ("ssl_module", "mod_ssl.so"),
               ("http2_module", "mod_http2.so"), ("rewrite_module", "mod_rewrite.so"))

    def local_prelude(self):
        return "".join(f"<IfModule !{name}>\n    LoadModule {name} /usr/lib/apache2/modules/{so}\n"
                       f"</IfModule>\n" for name, so in self.MODULES)

    @staticmethod
    def test_command(main_conf):
        # apache2ctl reads /etc/apache2/envvars (APACHE_LOG_DIR, APACHE_RUN_USER, ...) first.
        return ["apache2ctl", "-t", "-f", main_conf]

    def reload(self, init):
        # apache_reload.sh: the graceful reload, then a wait until no old child accepts.
        return [scripts.command("apache_reload.sh", init.name)]

    def provisioned_files(self):
        # The catch-all's 443 virtual host needs mod_ssl and the host's self-signed pair.
        return [f"/etc/apache2/mods-enabled/{m}.load" for m in ("wsgi", "headers", "ssl", "http2",
                                                                "rewrite", "unique_id")] + [
            "/etc/ssl/private/ssl-cert-snakeoil.key"]
