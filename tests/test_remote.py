"""Host key refusals, without a host: what the user is told to run."""

import paramiko
import pytest

from ops import remote


@pytest.mark.parametrize("host, port, keyscan", [
    ("198.18.0.11", 22, "ssh-keyscan 198.18.0.11 >>"),
    ("198.18.0.11", 2299, "ssh-keyscan -p 2299 198.18.0.11 >>"),
    ("fd46:6f70:7300::11", 2299, "ssh-keyscan -p 2299 fd46:6f70:7300::11 >>"),
])
def test_an_unknown_host_key_names_the_keyscan_line_for_its_address_and_port(host, port, keyscan):
    policy = remote._RefuseUnknown(["/root/.ssh/known_hosts"], host, port)
    key = paramiko.RSAKey.generate(1024)
    known_as = host if port == 22 else f"[{host}]:{port}"  # how paramiko names it
    with pytest.raises(remote.UnknownHostKey) as err:
        policy.missing_host_key(None, known_as, key)
    assert keyscan in str(err.value) and key.fingerprint in str(err.value)
