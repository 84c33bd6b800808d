"""Programs that run on the target host, kept as real files so shellcheck and the Python
linters read them. Each takes its arguments positionally (or as one JSON argument) and is
sent inline in the step's one SSH round trip: nothing is copied to the host first."""

import functools
import re
import shlex
from importlib import resources

q = shlex.quote


INCLUDE = re.compile(r"^# flask-ops: include (\S+)\n", re.M)


@functools.lru_cache(maxsize=None)
def text(name):
    """The script as it runs: each `# flask-ops: include LIB` line replaced by LIB's body
    (its shebang dropped), so shared shell functions travel in the same one command."""
    own = resources.files(__name__).joinpath(name).read_text()
    return INCLUDE.sub(lambda m: text(m.group(1)).split("\n", 1)[1], own)


def command(name, *args):
    """One shell command line that runs script `name` with `args` (each quoted)."""
    interpreter = "python3" if name.endswith(".py") else "bash"
    return " ".join([interpreter, "-c", q(text(name))]
                    + ([q(name)] if interpreter == "bash" else []) + [q(str(a)) for a in args])


def names():
    return sorted(p.name for p in resources.files(__name__).iterdir()
                  if p.name.endswith((".sh", ".py")) and not p.name.startswith("__"))


def readable(script):
    """The script with each inlined program shown by its file name, as a reader wants it
    (--dry-run, plan tests): `bash ops/scripts/verify.sh ARGS...`."""
    for name in names():
        if name.endswith(".sh"):
            inline, shown = f"bash -c {q(text(name))} {q(name)}", f"bash ops/scripts/{name}"
        else:
            inline, shown = f"python3 -c {q(text(name))}", f"python3 ops/scripts/{name}"
        script = script.replace(inline, shown)
    return script
