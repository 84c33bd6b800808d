"""The no-op each host last confirmed, remembered on this machine: with it, deploying an
unchanged build again is one SSH command (facts.py compares the host's facts with the ones
it had then, records the no-op and releases the lock in the same interpreter), not two.

A record is (what was deployed, the host's facts digest). "What was deployed" digests every
input of the no-op decision (plan.deploy_plan's nothing_to_do): the release, each file the
host installs, the settings, the app's environment, the certificate, and flask-ops' own code
(the build record's signature of it: the decision reads plans, stacks and inits alike). The
facts digest covers every other input. Same inputs, same decision: so a record only ever
skips a round trip, never a check.
"""

import hashlib
import json

from .. import cachedir
from ..build import buildcache
from . import plan as plan_mod


def inputs_digest(s, release, env, cert_files, acme_ca, facts_request):
    """Every input of the no-op decision that is not a fact of the host, as one sha256."""
    parts = {
        "settings": repr(s),
        "release": release.digest,
        "files": [[f.path, plan_mod.sha256(f.content)] for f in plan_mod.host_files(s, release.files)],
        # A keyed digest with a fixed key: the values never leave this machine, not even here.
        "env": env.digest("flask-ops no-op record") if env is not None else None,
        "certificate": getattr(cert_files, "sha256", None),
        "acme_ca": hashlib.sha256(acme_ca).hexdigest() if acme_ca else None,
        "facts": facts_request,
        "code": buildcache.code_signature(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _path(login, s):
    where = hashlib.sha256(f"{login} {s.base} {s.app_name}".encode()).hexdigest()[:32]
    return cachedir.cache_root() / "noop" / f"{where}.json"


def recalled(login, s, inputs):
    """The facts digest the host had when it last served these inputs, or None."""
    try:
        record = json.loads(_path(login, s).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("inputs") != inputs:
        return None
    digest = record.get("facts")
    return digest if isinstance(digest, str) and digest else None


def remember(login, s, inputs, facts_digest):
    """The host serves these inputs with facts of this digest (a deploy's finish, a no-op)."""
    if facts_digest:  # without a record the next no-op takes two commands
        cachedir.keep(_path(login, s), json.dumps({"inputs": inputs, "facts": facts_digest}))


def forget(login, s):
    try:
        _path(login, s).unlink()
    except OSError:
        pass
