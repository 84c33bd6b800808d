"""Certificates on the deploy side: the user's files read and checked before any host is
touched (key matches, not expired, names covered), and what a host reports described.

A key's bytes live only in CertFiles (masked repr) and travel on SSH's stdin.
"""

import datetime
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OpsError

WARN_DAYS = 14


@dataclass(frozen=True)
class CertFiles:
    chain: bytes = field(repr=False)
    key: bytes = field(repr=False)
    sha256: str = ""  # of the chain: the host reports the same digest of what it serves
    names: tuple = ()
    not_after: float = 0.0
    ca_bundle: bytes = b""  # tls.certificate.ca_bundle: what balancers trust app hosts by

    def payload(self):
        return json.dumps({"chain": self.chain.decode(), "key": self.key.decode(),
                           "ca_bundle": self.ca_bundle.decode()})


def _read(key, path):
    """A certificate, key or CA bundle: a regular file (a FIFO would block, /dev/zero would
    never end), at most 1 MiB."""
    from .. import safeio

    p = Path(path).expanduser()
    return p, safeio.read_regular(p, f"deploy.{key}", limit=1024 * 1024, follow=True)


def _names(cert):
    from cryptography import x509
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return ()


def covers(names, name):
    """A certificate name list covers `name` (a wildcard covers exactly one label)."""
    for n in names:
        n = n.lower()
        if n == name.lower() or (n.startswith("*.") and "." in name
                                 and name.lower().split(".", 1)[1] == n[2:]):
            return True
    return False


def _utc(cert, attr):
    value = getattr(cert, attr + "_utc", None) or getattr(cert, attr).replace(
        tzinfo=datetime.timezone.utc)
    return value


def load_files(s, warn=print, now=None):
    """The certificate files of tls.certificate, checked; OpsError naming the key otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    tls = s.tls
    chain_path, chain = _read("tls.certificate.chain", tls.chain)
    key_path, key_bytes = _read("tls.certificate.key", tls.key)
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError:
        raise OpsError(f"deploy.tls.certificate.chain: {tls.chain}: not a PEM certificate "
                       "chain") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except (ValueError, TypeError):
        raise OpsError(f"deploy.tls.certificate.key: {tls.key}: not an unencrypted PEM private "
                       "key") from None
    leaf = certs[0]
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*pub) != key.public_key().public_bytes(*pub):
        raise OpsError(f"deploy.tls.certificate.key: {tls.key} does not match the certificate "
                       f"in tls.certificate.chain ({tls.chain})")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_after = _utc(leaf, "not_valid_after")
    if not_after <= now:
        raise OpsError(f"deploy.tls.certificate.chain: {tls.chain}: the certificate expired on "
                       f"{not_after:%Y-%m-%d}")
    if _utc(leaf, "not_valid_before") > now:
        raise OpsError(f"deploy.tls.certificate.chain: {tls.chain}: the certificate is not "
                       "valid yet")
    names = _names(leaf)
    missing = [n for n in s.server_names if not covers(names, n)]
    if missing:
        raise OpsError(f"deploy.tls.certificate.chain: {tls.chain} does not cover "
                       f"{', '.join(missing)} (it names {', '.join(names) or 'no DNS name'})")
    days = (not_after - now).days
    if days < WARN_DAYS:
        warn(f"warning: tls.certificate.chain expires in {days} days ({not_after:%Y-%m-%d})")
    if stat.S_IMODE(os.stat(key_path).st_mode) & 0o077:
        warn(f"warning: tls.certificate.key {tls.key} is readable by other users on this "
             "machine (chmod 600 it)")
    import hashlib
    bundle = _read("tls.certificate.ca_bundle", tls.ca_bundle)[1] if tls.ca_bundle else b""
    return CertFiles(chain, key_bytes, hashlib.sha256(chain).hexdigest(), names,
                     not_after.timestamp(), bundle)


def acme_ca(s):
    """The private ACME server's CA bundle (PEM bytes), or None for the system's."""
    if not (s.tls and s.tls.acme and s.tls.ca_bundle):
        return None
    _, data = _read("tls.acme.ca_bundle", s.tls.ca_bundle)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise OpsError(f"deploy.tls.acme.ca_bundle: {s.tls.ca_bundle}: not a PEM CA bundle")
    return data


def describe(info, now):
    """'issuer, expires YYYY-MM-DD (N days left)' from a host's certificate facts."""
    if not info:
        return "none"
    days = int((info["not_after"] - now) // 86400)
    when = datetime.datetime.fromtimestamp(info["not_after"], datetime.timezone.utc)
    text = f"{info.get('issuer') or '?'}; {', '.join(info.get('names', []))}; expires " \
           f"{when:%Y-%m-%d} ({days} days left)"
    return text + (" WARNING: renew soon" if days < WARN_DAYS else "")
