"""The `tls` key: certificates from an ACME server (certbot on the host) or files the user
already has; absent means plain HTTP on listen_port, as before.

    tls:
      acme: {email: ops@example.com}          # Let's Encrypt; or directory: URL, ca_bundle: PATH
      hsts: 63072000                          # seconds; 0: no Strict-Transport-Security
    (HTTPS is on port 443: every host's catch-all refuses TLS for names it does not serve there.)
    tls:
      certificate: {chain: ~/certs/shop.pem, key: ~/certs/shop.key}
"""

import re
from dataclasses import dataclass

from ..errors import SettingsError

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACME_WEBROOT = "/var/lib/flask-ops/acme"  # every port-80 server answers challenges from here
# Several balancers share one ACME certificate: the first runs certbot, the others send the
# challenges they cannot answer to it. Per port and app: PORT/APP.upstream (its server line).
ACME_FORWARD_DIR = "/etc/flask-ops/acme-forward"
HSTS_DEFAULT = 63072000  # two years (Mozilla)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\Z")
_HTTPS_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/%-]*)?\Z")


@dataclass(frozen=True)
class Tls:
    mode: str  # "acme" | "files"
    email: str = ""
    directory: str = LETSENCRYPT
    # On the deploying machine: the CA (PEM) of a private ACME server (its API and what it
    # issues), or of the user's own certificate; smoke checks verify the chain against it.
    ca_bundle: str = ""
    chain: str = ""  # files: the certificate chain (PEM) on the deploying machine
    key: str = ""  # files: its private key (PEM) on the deploying machine; never printed
    hsts: int = HSTS_DEFAULT
    port: int = 443  # fixed: the catch-all's default TLS server listens here
    # Staple the CA's OCSP answer to the handshake: for CAs that still run OCSP (Let's
    # Encrypt ended it in 2025, so off by default; nginx warns for a certificate without it).
    ocsp_stapling: bool = False
    resolvers: tuple = ()  # DNS servers nginx asks for the CA's OCSP host (IP or IP:port)
    # In a fleet: app hosts serve TLS too and the balancers re-encrypt to them, verifying
    # their certificate for the site's name (the default: plain on the private network).
    to_app_hosts: bool = False
    # Set by the fleet, never by the user: several balancers serve one ACME certificate,
    # issued on the first and copied to the others, from flask-ops' own directory on each.
    distributed: bool = False

    @property
    def acme(self):
        return self.mode == "acme"


def _fail(key, value, allowed):
    raise SettingsError(key, value, allowed)


def _path(key, value):
    if not isinstance(value, str) or not value or any(c in value for c in "\0\n\r"):
        _fail(key, value, "a file on the deploying machine")
    return value


def _resolver(key, value):
    """An IPv4 address with an optional port (nginx's `resolver` syntax)."""
    import ipaddress
    host, _, port = str(value).partition(":")
    try:
        ipaddress.IPv4Address(host)
        if port and not 1 <= int(port) <= 65535:
            raise ValueError
    except ValueError:
        _fail(key, value, "IPv4 addresses of DNS servers, optionally with :PORT")
    return str(value)


def parse(key, value):
    """Tls from the key's value; None for no TLS (absent, null or `off`)."""
    if value in (None, False, "off"):
        return None
    allowed = ("{acme: {email: ...}} or {certificate: {chain: PATH, key: PATH}}, "
               "optionally with hsts: SECONDS, ocsp_stapling: true and resolvers: [IP]; or off")
    if not isinstance(value, dict) or set(value) - {"acme", "certificate", "hsts", "ocsp_stapling", "resolvers",
                                              "to_app_hosts"} \
            or len({"acme", "certificate"} & set(value)) != 1:
        _fail(key, value, allowed)
    hsts = value.get("hsts", HSTS_DEFAULT)
    if isinstance(hsts, bool) or not isinstance(hsts, int) or not 0 <= hsts <= 2 * HSTS_DEFAULT:
        _fail(f"{key}.hsts", hsts, f"seconds from 0 (off) to {2 * HSTS_DEFAULT}")
    ocsp = value.get("ocsp_stapling", False)
    if not isinstance(ocsp, bool):
        _fail(f"{key}.ocsp_stapling", ocsp, "true or false")
    resolvers = tuple(_resolver(f"{key}.resolvers", r) for r in value.get("resolvers") or ())
    to_app_hosts = value.get("to_app_hosts", False)
    if not isinstance(to_app_hosts, bool):
        _fail(f"{key}.to_app_hosts", to_app_hosts, "true or false")
    if to_app_hosts and "acme" in value:
        _fail(f"{key}.to_app_hosts", True, "certificate files (tls.certificate): app hosts "
              "behind a balancer cannot answer ACME's HTTP-01 challenge for the site's names")
    if "acme" in value:
        acme = value["acme"]
        if not isinstance(acme, dict) or set(acme) - {"email", "directory", "ca_bundle"} \
                or "email" not in acme:
            _fail(f"{key}.acme", acme, "{email: ADDRESS} with optional directory: URL and "
                                       "ca_bundle: PATH")
        if not isinstance(acme["email"], str) or not _EMAIL.match(acme["email"]):
            _fail(f"{key}.acme.email", acme["email"], "an e-mail address for the ACME account")
        directory = acme.get("directory", LETSENCRYPT)
        if not isinstance(directory, str) or not _HTTPS_URL.match(directory):
            _fail(f"{key}.acme.directory", directory, "an https:// URL of an ACME directory")
        bundle = _path(f"{key}.acme.ca_bundle", acme["ca_bundle"]) if "ca_bundle" in acme else ""
        return Tls("acme", email=acme["email"], directory=directory, ca_bundle=bundle,
                   hsts=hsts, ocsp_stapling=ocsp, resolvers=resolvers)
    cert = value["certificate"]
    if not isinstance(cert, dict) or not {"chain", "key"} <= set(cert) <= {"chain", "key", "ca_bundle"}:
        _fail(f"{key}.certificate", cert, "{chain: PATH, key: PATH} on the deploying machine, "
              "and ca_bundle: PATH when its CA is not a public one")
    bundle = _path(f"{key}.certificate.ca_bundle", cert["ca_bundle"]) if "ca_bundle" in cert else ""
    return Tls("files", chain=_path(f"{key}.certificate.chain", cert["chain"]),
               key=_path(f"{key}.certificate.key", cert["key"]), ca_bundle=bundle, hsts=hsts,
               ocsp_stapling=ocsp, resolvers=resolvers, to_app_hosts=to_app_hosts)
