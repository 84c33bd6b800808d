"""Host key refusals and standard input, without a host."""

import subprocess
import threading

import paramiko
import pytest

from ops.deploy import remote


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


def test_the_gateway_setting_routes_a_host_unless_its_ssh_config_does(tmp_path, load):
    """`gateway:` is the jump host of every session; a host whose SSH config names its own
    ProxyJump keeps it (ssh's rule: the config wins)."""
    config = tmp_path / "ssh_config"
    config.write_text("Host routed\n    ProxyJump bastion2\n")
    s = load(gateway="deploy@bastion:2222")
    plain = remote.open_host("web1", ssh_config=config, gateway=s.gateway).c
    assert (plain.gateway.user, plain.gateway.host, plain.gateway.port) == ("deploy", "bastion", 2222)
    routed = remote.open_host("routed", ssh_config=config, gateway=s.gateway).c
    assert routed.gateway.host == "bastion2"
    assert remote.open_host("web1", ssh_config=config).c.gateway is None


@pytest.mark.parametrize("value", ["bastion;rm -rf /", "-oProxyCommand=sh", "a@b:0", ["x"]])
def test_a_gateway_that_is_not_an_ssh_host_is_refused(load, value):
    from ops.config.settings import SettingsError
    with pytest.raises(SettingsError) as err:
        load(gateway=value)
    assert err.value.key == "gateway"


class _FlakySession:
    """A connection whose server closes it during authentication `fails` times."""

    def __init__(self, fails, error):
        self.fails, self.error, self.opened, self.closed = fails, error, 0, 0
        self.is_connected = False

    def open(self):
        self.opened += 1
        if self.opened <= self.fails:
            raise self.error
        self.is_connected = True

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("error, fails, opened", [
    (paramiko.AuthenticationException("Authentication failed: transport shut down or saw EOF"), 2, 3),
    (paramiko.SSHException("Error reading SSH protocol banner"), 1, 2),
])
def test_a_session_the_server_closes_while_opening_is_tried_again(monkeypatch, error, fails, opened):
    monkeypatch.setattr(remote.time, "sleep", lambda s: None)
    r = object.__new__(remote.Remote)
    r.c = _FlakySession(fails, error)
    r._open()
    assert r.c.is_connected and r.c.opened == opened


@pytest.mark.parametrize("error", [paramiko.AuthenticationException("Authentication failed."),
                                   paramiko.BadHostKeyException("h", paramiko.RSAKey.generate(1024),
                                                                paramiko.RSAKey.generate(1024))])
def test_a_refused_key_or_a_wrong_host_key_is_not_tried_again(monkeypatch, error):
    monkeypatch.setattr(remote.time, "sleep", lambda s: None)
    r = object.__new__(remote.Remote)
    r.c = _FlakySession(1, error)
    with pytest.raises(type(error)):
        r._open()
    assert r.c.opened == 1


def test_a_commands_standard_input_is_handed_over_in_one_piece():
    """A certificate, an environment or a sudo password on stdin: Invoke reads a plain stream
    one character per 10 ms (a 1.4 kB certificate took 14 s to reach each host)."""
    import invoke
    payload = "x" * 20000 + "\n"
    result = invoke.Context().run("wc -c", in_stream=remote._Whole(payload), hide=True,
                                  timeout=10)
    assert result.stdout.split() == [str(len(payload))]


class _SlowSession(_FlakySession):
    """A handshake that lasts until the test lets it finish, and notes its thread."""

    def __init__(self, fails=0, error=None):
        super().__init__(fails, error)
        self.go, self.threads = threading.Event(), []

    def open(self):
        self.threads.append(threading.current_thread().name)
        assert self.go.wait(10)
        super().open()


def test_the_handshake_overlaps_the_build_and_the_first_command_waits_for_it():
    """connect_ahead returns at once; the handshake runs beside the build, once; the first
    command uses that session."""
    r = object.__new__(remote.Remote)
    r.c = _SlowSession()
    r.c.original_host = "web1"
    r.connect_ahead()
    assert not r.c.is_connected  # still shaking hands: the caller went on
    r.c.go.set()
    r._open()
    assert r.c.is_connected and r.c.opened == 1 and r.c.threads == ["ssh web1"]


def test_a_handshake_that_failed_ahead_fails_the_first_command_as_unreachable():
    """The error of a background handshake is the first command's, once, with its host named
    (not a thread's traceback, not a second 10 s connect attempt)."""
    r = object.__new__(remote.Remote)
    r.c = _SlowSession(1, paramiko.AuthenticationException("Authentication failed."))
    r.c.user, r.c.host, r.c.port, r.c.original_host = "root", "198.18.0.11", 22, "web1"
    r.commands = 0
    r.connect_ahead()
    r.c.go.set()
    with pytest.raises(remote.Unreachable, match="facts: cannot run on web1 .*Authentication failed"):
        r.run("true", "facts")
    assert r.c.opened == 1


class _Resolved:
    """What openssh.wanted reads of a Fabric Connection."""

    def __init__(self, cfg, connect_kwargs=None, gateway=None):
        self.ssh_config, self.connect_kwargs, self.gateway = cfg, connect_kwargs or {}, gateway
        self.port, self.user, self.original_host, self.connect_timeout = 2222, "deploy", "web1", 10


def test_openssh_carries_commands_only_where_the_ssh_config_shares_connections():
    """OpenSSH gets the config Fabric resolved, key by key; the user and port Fabric uses win.
    No sharing, a password or a jump host: Paramiko, as before."""
    from ops.deploy import openssh

    shared = {"hostname": "198.18.0.50", "controlmaster": "auto", "controlpersist": "60s",
              "controlpath": "/tmp/cm-abc", "identityfile": ["/k/id"], "user": "root",
              # Debian's /etc/ssh/ssh_config, as Paramiko reads it: OpenSSH refuses -o Include
              "include": "/etc/ssh/ssh_config.d/*.conf", "sendenv": "LANG LC_*"}
    argv = openssh.wanted(_Resolved(shared, {"key_filename": ["/k/id", "/k/other"]}))
    assert argv[:3] == ["ssh", "-F", "/dev/null"] and argv[-1] == "web1"
    assert "hostname=198.18.0.50" in argv and "controlpath=/tmp/cm-abc" in argv
    assert argv.count("-i") == 2 and "user=root" not in argv and "sendenv=LANG LC_*" in argv
    assert not [a for a in argv if a.startswith("include=")]
    # what OpenSSH itself makes of it: every option accepted (ssh -G resolves, connects nowhere)
    resolved = subprocess.run(argv[:-1] + ["-G", argv[-1]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert resolved.returncode == 0, resolved.stderr
    assert "hostname 198.18.0.50" in resolved.stdout and "port 2222" in resolved.stdout
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "deploy"
    assert openssh.master_listening(argv) is False
    assert openssh.wanted(_Resolved(dict(shared, controlmaster="no"))) is None
    assert openssh.wanted(_Resolved(dict(shared, controlpath="none"))) is None
    assert openssh.wanted(_Resolved(shared, {"password": "x"})) is None
    assert openssh.wanted(_Resolved(shared, gateway=object())) is None
    assert openssh.wanted(_Resolved({"hostname": "198.18.0.50"})) is None


def test_what_openssh_carries_back_is_the_commands_own_and_its_failures_are_ssh_s():
    """A command's output (a stray byte too), its exit status and its input as OpenSSH's
    client hands them over; exit 255 is OpenSSH's own failure (unreachable, refused key)."""
    from ops.deploy import openssh

    fake_ssh = ["bash", "-c", 'eval "$2"', "ssh"]  # runs the command as ssh would, here
    result = openssh.run(fake_ssh, "cat; printf '\\377 done\\n' >&2; exit 3", stdin="secret\n")
    assert (result.stdout, result.stderr, result.exited) == ("secret\n", "\ufffd done\n", 3)
    lines = []
    echoed = openssh.run(fake_ssh, "echo one; echo two >&2", echo=lines.append)
    assert sorted(lines) == ["one", "two"] and echoed.stdout == "one\n"
    with pytest.raises(openssh.SshFailed, match="Connection refused"):
        openssh.run(fake_ssh, "echo 'ssh: connect to host web1 port 22: Connection refused' >&2; "
                              "exit 255")
    with pytest.raises(subprocess.TimeoutExpired):
        openssh.run(fake_ssh, "exec sleep 5", timeout=0.2)
