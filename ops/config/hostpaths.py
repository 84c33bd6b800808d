"""Where things live on a host, derived from the app description: one module for every path
(and unit name) a config, a plan or a check names on the host. `settings.Settings` inherits
them (templates read `s.current`, `s.socket`, ...); Settings itself holds the validated keys.
"""

from ..targets import appservers, inits, stacks
from . import tlsconf


class HostPaths:
    """Mixed into Settings: each property reads only the description's own keys."""

    @property
    def base(self):
        return self.base_dir or f"/srv/{self.app_name}"

    @property
    def current(self):
        return f"{self.base}/current"

    @property
    def releases(self):
        return f"{self.base}/releases"

    @property
    def shared(self):
        return f"{self.base}/shared"

    @property
    def data_dir(self):
        """The one directory the app may write (uploads, SQLite): outside every release, kept
        across deploys; the app sees it as FLASK_OPS_DATA_DIR."""
        return f"{self.shared}/data"

    @property
    def linked_dir(self):
        """Where shared_dirs and shared_files live on the host (shared/linked/PATH)."""
        return f"{self.shared}/linked"

    @property
    def socket(self):
        return inits.of(self).socket(self)

    @property
    def master_fifo(self):
        """uWSGI's command FIFO, when the init system makes a private directory for it."""
        return inits.of(self).master_fifo(self)

    @property
    def service(self):
        """The app server's unit (and, with `.socket`, its socket's)."""
        return stacks.app_server_of(self.stack).unit(self)

    @property
    def uwsgi_ini(self):
        return appservers.Uwsgi().ini(self)

    @property
    def static_root(self):
        """Where `flask collect` output lives in a release; the front server serves it."""
        return f"{self.current}/collected_static"

    @property
    def tls_dir(self):
        """Where the certificate lives on the host: certbot's lineage, or ours for files and
        for an ACME certificate several balancers share (copied from certbot's lineage)."""
        if self.tls and self.tls.acme and not self.tls.distributed:
            return f"/etc/letsencrypt/live/{self.app_name}"
        return f"/etc/flask-ops/{self.app_name}/tls"

    @property
    def tls_cert(self):
        return f"{self.tls_dir}/fullchain.pem"

    @property
    def tls_key(self):
        return f"{self.tls_dir}/privkey.pem"

    @property
    def lb_trust(self):
        """CAs a balancer trusts for its app hosts' certificates (tls.to_app_hosts): the
        user's bundle, installed next to the certificate, else the system's."""
        if self.tls and self.tls.ca_bundle:
            return f"{self.tls_dir}/ca-bundle.pem"
        return "/etc/ssl/certs/ca-certificates.crt"

    @property
    def acme_webroot(self):
        return tlsconf.ACME_WEBROOT

    @property
    def acme_forward_dir(self):
        """This port's files naming the balancers whose certbot answers challenges this
        host has no file for (balancers that share a certificate)."""
        return f"{tlsconf.ACME_FORWARD_DIR}/{self.listen_port}"

    @property
    def env_file(self):
        return f"{self.shared}/env"

    @property
    def wsgi_file(self):
        """The release's entry module (wsgi/entry.py.j2); gunicorn imports it by name."""
        return stacks.app_server_of(self.stack).entry_path(self)

    @property
    def run_file(self):
        """The release's command runner (hooks, fab exec, workers): wsgi/run.py.j2."""
        return f"{self.current}/flask-ops-run.py"

    def worker_unit(self, worker):
        return f"{self.app_name}-worker-{worker.name}"

    @property
    def maintenance_flag(self):
        """Present: the front server answers 503 (fab maintenance on); outside every release."""
        return f"/etc/flask-ops/{self.app_name}/maintenance.on"

    @property
    def maintenance_page(self):
        return f"/etc/flask-ops/{self.app_name}/maintenance.html"

    @property
    def error_pages_dir(self):
        """The front server's own error pages, CODE.html (outside every release)."""
        return f"/etc/flask-ops/{self.app_name}/errors"

    @property
    def history_file(self):
        """Every deploy, rollback and maintenance toggle, one JSON line each; never pruned."""
        return f"{self.base}/.flask-ops/history.jsonl"

    @property
    def cache_dir(self):
        return f"/var/cache/nginx/{self.app_name}"

    @property
    def gunicorn_entry(self):
        """The module gunicorn imports: the release's entry (wsgi_file), by name."""
        return appservers.GUNICORN_ENTRY
