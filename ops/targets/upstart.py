"""A strict checker for upstart job files: upstart itself cannot run on a systemd host.

It knows the stanzas of upstart 1.12 (Ubuntu 14.04) and their argument shapes; anything
else, a stanza given twice, or a job without `start on` and `exec`/`script` is an error.
"""

import re

_SIGNAL = r"(?:SIG)?[A-Z]+[0-9]*|[0-9]+"
_EVENT_EXPR = r"\S.*"
# stanza -> (argument pattern, may repeat)
STANZAS = {
    "description": (r'"[^"\n]*"', False),
    "author": (r'"[^"\n]*"', False),
    "version": (r'"[^"\n]*"', False),
    "usage": (r'"[^"\n]*"', False),
    "start on": (_EVENT_EXPR, False),
    "stop on": (_EVENT_EXPR, False),
    "manual": (r"", False),
    "respawn": (r"", False),
    "respawn limit": (r"(?:[0-9]+ [0-9]+|unlimited)", False),
    "normal exit": (r"(?:(?:[0-9]+|" + _SIGNAL + r")\s*)+", True),
    "task": (r"", False),
    "expect": (r"(?:fork|daemon|stop)", False),
    "kill signal": (_SIGNAL, False),
    "kill timeout": (r"[0-9]+", False),
    "reload signal": (_SIGNAL, False),
    "setuid": (r"[a-z_][a-z0-9_-]*", False),
    "setgid": (r"[a-z_][a-z0-9_-]*", False),
    "chdir": (r"/\S*", False),
    "chroot": (r"/\S*", False),
    "umask": (r"[0-7]{3,4}", False),
    "nice": (r"-?[0-9]+", False),
    "oom score": (r"(?:-?[0-9]+|never)", False),
    "limit": (r"[a-z]+ (?:[0-9]+|unlimited) (?:[0-9]+|unlimited)", True),
    "env": (r"[A-Za-z_][A-Za-z0-9_]*(?:=\S.*)?", True),
    "export": (r"[A-Za-z_][A-Za-z0-9_]*", True),
    "console": (r"(?:log|none|output|owner)", False),
    "instance": (r"\S+", False),
    "emits": (r"\S+(?: \S+)*", True),
    "exec": (r"/\S+(?: .*)?", False),
    "pre-start exec": (r"/\S+(?: .*)?", False),
    "post-start exec": (r"/\S+(?: .*)?", False),
    "pre-stop exec": (r"/\S+(?: .*)?", False),
    "post-stop exec": (r"/\S+(?: .*)?", False),
}
SCRIPT_BLOCKS = ("script", "pre-start script", "post-start script", "pre-stop script",
                 "post-stop script")


class UpstartSyntaxError(ValueError):
    pass


def _match_stanza(line):
    """Longest stanza keyword that starts the line, or None."""
    for name in sorted(STANZAS, key=len, reverse=True):
        if line == name or line.startswith(name + " "):
            return name, line[len(name):].strip()
    return None, None


def check(text):
    """Raise UpstartSyntaxError naming the line; return the parsed stanzas otherwise."""
    seen, in_script = {}, None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if in_script:
            if line == "end script":
                in_script = None
            continue
        if not line or line.startswith("#"):
            continue
        if line in SCRIPT_BLOCKS:
            if line in seen:
                raise UpstartSyntaxError(f"line {number}: '{line}' given twice")
            seen[line], in_script = [""], line
            continue
        name, args = _match_stanza(line)
        if name is None:
            raise UpstartSyntaxError(f"line {number}: unknown stanza: {line!r}")
        pattern, repeats = STANZAS[name]
        if not re.fullmatch(pattern, args):
            raise UpstartSyntaxError(f"line {number}: bad arguments for '{name}': {args!r}")
        if name in seen and not repeats:
            raise UpstartSyntaxError(f"line {number}: '{name}' given twice")
        seen.setdefault(name, []).append(args)
    if in_script:
        raise UpstartSyntaxError(f"'{in_script}' has no 'end script'")
    if "exec" in seen and "script" in seen:
        raise UpstartSyntaxError("a job has either 'exec' or 'script', not both")
    if "exec" not in seen and "script" not in seen:
        raise UpstartSyntaxError("the job runs nothing: no 'exec' or 'script'")
    if "start on" not in seen and "manual" not in seen:
        raise UpstartSyntaxError("the job never starts: no 'start on'")
    if "respawn limit" in seen and "respawn" not in seen:
        raise UpstartSyntaxError("'respawn limit' without 'respawn'")
    return seen
