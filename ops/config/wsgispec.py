"""The `wsgi` key: 'module:name' (an app object) or 'module:factory(...)' (an app factory).

uWSGI and mod_wsgi import a module and take an attribute; neither can call a factory. So the
release carries a small entry module (templates/wsgi/entry.py.j2) that does, and the build's
collect driver does the same. The call's arguments are literals only (strings, numbers,
True/False/None), as `flask --app 'pkg:create_app("prod")'` accepts: the key names the app,
it is not a place for code.
"""

import ast
import re
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

_TARGET = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)(\(.*\))?\Z", re.S)


@dataclass(frozen=True)
class WsgiSpec:
    module: str
    name: str
    call: Optional[Tuple[tuple, tuple]] = None  # (args, ((key, value), ...)) for a factory

    @property
    def call_source(self):
        """Python source of the call after the name ('' for an app object), from the parsed
        literals, so nothing the user wrote reaches the entry module verbatim."""
        if self.call is None:
            return ""
        args, kwargs = self.call
        return "(" + ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs]) + ")"

    @property
    def text(self):
        """The spec written back from its parsed parts (`flask --app` reads it): what
        generated files carry, never the user's own text."""
        return f"{self.module}:{self.name}{self.call_source}"

    def as_json(self):
        return {"module": self.module, "name": self.name, "call": self.call is not None,
                "args": list(self.call[0]) if self.call else [],
                "kwargs": dict(self.call[1]) if self.call else {}}


def _literal(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return -node.operand.value
    raise ValueError("only literal arguments")


def parse(text):
    """WsgiSpec from the key's text; ValueError when it is not one."""
    if isinstance(text, str) and any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("a control character (newline, tab...)")
    m = _TARGET.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError("not module:name")
    module, name, call = m.groups()
    if module.split(".")[0] in sys.stdlib_module_names:
        raise ValueError("a standard library module")
    if call is None:
        return WsgiSpec(module, name)
    try:
        node = ast.parse(name + call, mode="eval").body
    except SyntaxError:
        raise ValueError("not a call") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError("not a call")
    if any(k.arg is None for k in node.keywords):
        raise ValueError("only literal arguments")
    args = tuple(_literal(a) for a in node.args)
    kwargs = tuple((k.arg, _literal(k.value)) for k in node.keywords)
    return WsgiSpec(module, name, (args, kwargs))
