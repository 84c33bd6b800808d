"""A local ACME server for staging: Pebble (Let's Encrypt's test CA) and its mock DNS,
pebble-challtestsrv, on the staging bridge (198.18.0.1), so `tls: {acme: ...}` runs for real
against the staging hosts without the internet.

Pebble validates HTTP-01 by connecting to port 80 of the address its DNS gives for a name:
challtestsrv answers every name with staging1's address unless told otherwise (`point`).
Certificates Pebble issues chain to a root it generates at each start; `up` writes that root
and the CA of Pebble's own API into one bundle, which is what `tls.acme.ca_bundle` names.
"""

import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import net as staging_net
from ..errors import OpsError

HOST = staging_net.BRIDGE_ADDR
ACME_PORT, MANAGEMENT_PORT, DNS_PORT, DNS_MANAGEMENT_PORT, OCSP_PORT = 14000, 15000, 8053, 8055, 4002
PROCESSES = ("pebble-challtestsrv", "pebble", "ocsp")


def state_dir():
    return staging_net.STATE_DIR / "pebble"


@dataclass(frozen=True)
class Acme:
    directory: str
    ca_bundle: str  # Pebble's API CA and its issuing root, PEM

    def settings(self, email="ops@example.com"):
        """The `tls` value that uses this server."""
        return {"acme": {"email": email, "directory": self.directory, "ca_bundle": self.ca_bundle}}


def _api_certificate(directory):
    """A CA and a certificate for Pebble's API on HOST, signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    # A name of its own and key identifiers: hosts may still trust an earlier run's CA, and
    # OpenSSL must not pick that one to verify this one's certificate.
    ca_name = x509.Name([x509.NameAttribute(
        NameOID.COMMON_NAME, f"flask-ops staging ACME API CA {os.urandom(4).hex()}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / "api-ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "api-cert.pem").write_bytes(leaf.public_bytes(pem))
    key_file = directory / "api-key.pem"
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)


def _running(name):
    """The pid of our `name` process, if it still runs (the pid file is ours)."""
    pid_file = state_dir() / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except (OSError, ValueError):
        return None
    if name == "ocsp":
        return pid if "ops.staging.ocsp_responder" in argv else None
    return pid if os.path.basename(argv[0]) == name else None


def _start(name, argv, env=None):
    log = open(state_dir() / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **(env or {})},
                            cwd=state_dir())
    (state_dir() / f"{name}.pid").write_text(str(proc.pid))


def _get(url, context=None, data=None, deadline=10.0):
    """The body at url, retried until `deadline` seconds pass (the server is starting)."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5,
                                        context=context) as resp:
                return resp.read()
        except OSError as exc:
            if time.monotonic() > end:
                raise OpsError(f"the staging ACME server does not answer at {url}: {exc} "
                               f"(see {state_dir()})") from None
            time.sleep(0.2)


def up(default_address=None):
    """Start Pebble and its DNS (once; idempotent) and return how to reach them."""
    if not Path("/usr/bin/pebble").exists():
        raise OpsError("pebble is not installed: make system-deps (Debian package pebble)")
    if not staging_net.bridge_is_up():
        raise OpsError(f"the staging bridge ({HOST}) is down: fab staging.up first")
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "api-ca.pem").exists():
        _api_certificate(d)
    default = default_address or staging_net.nspawn_address(1)  # staging1
    if not _running("pebble-challtestsrv"):
        _start("pebble-challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", default, "-defaultIPv6", "",
            "-dns01", f"{HOST}:{DNS_PORT}", "-management", f"{HOST}:{DNS_MANAGEMENT_PORT}",
            "-http01", "", "-https01", "", "-tlsalpn01", ""])
    if not _running("pebble"):
        (d / "pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": f"{HOST}:{ACME_PORT}",
            "managementListenAddress": f"{HOST}:{MANAGEMENT_PORT}",
            "certificate": str(d / "api-cert.pem"), "privateKey": str(d / "api-key.pem"),
            "httpPort": 80, "tlsPort": 443,
            # Certificates name our responder (ops.staging.ocsp_responder), so stapling can be proven.
            "ocspResponderURL": f"http://{HOST}:{OCSP_PORT}/",
            "externalAccountBindingRequired": False}}))
        # No artificial delays, no randomly rejected nonces: tests wait on conditions.
        _start("pebble", ["pebble", "-config", str(d / "pebble.json"),
                          "-dnsserver", f"{HOST}:{DNS_PORT}"],
               env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
    api = ssl.create_default_context(cafile=str(d / "api-ca.pem"))
    directory = f"https://{HOST}:{ACME_PORT}/dir"
    _get(directory, api)
    root = _get(f"https://{HOST}:{MANAGEMENT_PORT}/roots/0", api)
    bundle = d / "ca-bundle.pem"
    bundle.write_bytes((d / "api-ca.pem").read_bytes() + root)
    if not _running("ocsp"):
        (d / "issuer.pem").write_bytes(_get(f"https://{HOST}:{MANAGEMENT_PORT}/intermediates/0", api))
        key = d / "issuer-key.pem"
        key.write_bytes(_get(f"https://{HOST}:{MANAGEMENT_PORT}/intermediate-keys/0", api))
        key.chmod(0o600)
        _start("ocsp", [sys.executable, "-m", "ops.staging.ocsp_responder", HOST, str(OCSP_PORT),
                        str(d / "issuer.pem"), str(key)],
               env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    return Acme(directory, str(bundle))


def point(name, address):
    """Pebble's DNS answers `name` with `address` (a staging host)."""
    body = json.dumps({"host": name.rstrip(".") + ".", "addresses": [address]}).encode()
    _get(f"http://{HOST}:{DNS_MANAGEMENT_PORT}/add-a", data=body)


def down():
    """Stop the processes `up` started (by their pid files) and remove the state."""
    for name in PROCESSES:
        pid = _running(name)
        if pid:
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + 10
            while _running(name) and time.monotonic() < end:
                time.sleep(0.05)
            if _running(name):
                os.kill(pid, signal.SIGKILL)
    import shutil
    shutil.rmtree(state_dir(), ignore_errors=True)
