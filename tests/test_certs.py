"""The user's certificate files are checked on the deploying machine, before any host is
touched: one line naming the key for a mismatch, an expiry, a name not covered; a warning for
a key others can read or a certificate about to expire; the key never printed."""

import pytest

from certfiles import own_certificate
from conftest import ROOT, sample_settings
from ops.deploy import certs
from ops.errors import OpsError


def settings_for(tls):
    return sample_settings(ROOT, server_names=["own.test", "www.own.test"], tls=tls)


def test_good_files_load_with_their_digest_and_names_and_a_masked_repr(tmp_path):
    s = settings_for(own_certificate(tmp_path, ["own.test", "www.own.test"]))
    warnings = []
    files = certs.load_files(s, warn=warnings.append)
    assert warnings == [] and files.names == ("own.test", "www.own.test") and len(files.sha256) == 64
    assert "PRIVATE" not in repr(files) and b"PRIVATE KEY" in files.key


@pytest.mark.parametrize("make, message", [
    (lambda p: own_certificate(p, ["own.test", "www.own.test"], key_for=_other_key()),
     r"tls.certificate.key: .*key.pem does not match the certificate in tls.certificate.chain"),
    (lambda p: own_certificate(p, ["own.test", "www.own.test"], days=-2),
     r"tls.certificate.chain: .*the certificate expired on \d{4}-\d\d-\d\d"),
    (lambda p: own_certificate(p, ["own.test"]),
     r"does not cover www.own.test \(it names own.test\)"),
])
def test_bad_files_are_one_line_naming_the_key(tmp_path, make, message):
    s = settings_for(make(tmp_path))
    with pytest.raises(OpsError, match=message) as err:
        certs.load_files(s, warn=lambda m: None)
    assert "\n" not in str(err.value) and "PRIVATE" not in str(err.value)


def _other_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def test_a_readable_key_and_a_close_expiry_are_warnings(tmp_path):
    tls = own_certificate(tmp_path, ["own.test", "www.own.test"], days=5)
    (tmp_path / "key.pem").chmod(0o644)
    warnings = []
    certs.load_files(settings_for(tls), warn=warnings.append)
    assert any("expires in 4 days" in w or "expires in 5 days" in w for w in warnings), warnings
    assert any("readable by other users" in w for w in warnings)


def test_missing_and_garbage_files_name_the_key(tmp_path):
    tls = own_certificate(tmp_path, ["own.test", "www.own.test"])
    (tmp_path / "chain.pem").write_text("not a certificate\n")
    with pytest.raises(OpsError, match="tls.certificate.chain: .*not a PEM certificate chain"):
        certs.load_files(settings_for(tls))
    tls["certificate"]["key"] = str(tmp_path / "nope.pem")
    with pytest.raises(OpsError, match="tls.certificate.key: cannot read .*nope.pem"):
        certs.load_files(settings_for(tls))


def test_wildcards_cover_one_label():
    assert certs.covers(("*.own.test",), "www.own.test")
    assert not certs.covers(("*.own.test",), "own.test")
    assert not certs.covers(("*.own.test",), "a.b.own.test")
