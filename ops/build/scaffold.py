"""`fab init`: a commented fabric.yaml and the two-line fabfile for a project with a Flask app.

What can be found is found by importing the app in a build venv (ops.build.inspect_driver), as
`flask routes` does: the WSGI entry point or app factory, every static URL prefix, a likely
health route, routes that stream. The code is read first (never run) to know what to import.
Existing files are never overwritten.
"""

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import keys, settings as settings_mod
from ..errors import OpsError
from . import build, requirements as requirements_mod

DRIVER = Path(__file__).with_name("inspect_driver.py")
ENTRY_MODULES = ("wsgi", "app", "application", "main", "server", "run", "asgi")
FACTORIES = ("create_app", "make_app", "build_app", "app_factory", "get_app")
HEALTH_ROUTES = ("/healthz", "/health", "/_health", "/healthcheck", "/health-check", "/livez",
                 "/readyz", "/ping", "/status", "/_status", "/api/health", "/api/healthz")
SKIP_DIRS = {"__pycache__", "node_modules", "venv", "env", "site-packages", "tests", "test",
             "build", "dist", "migrations", "docs"}
FABFILE = '"""Deploy tasks: fab --list (flask-ops)."""\nfrom ops.tasks import ns  # noqa: F401\n'


@dataclass(frozen=True)
class Candidate:
    text: str  # the `wsgi` value, e.g. "wsgi:app" or "shop:create_app()"
    why: str  # where it was found, for the comment in fabric.yaml
    rank: tuple


def modules(source):
    """(module name, path) of every Python module under source the app could be imported
    from: not in hidden, test, build or virtualenv directories."""
    found = []
    for path in sorted(Path(source).rglob("*.py")):
        rel = path.relative_to(source)
        if len(rel.parts) > 5 or any(p.startswith(".") or p in SKIP_DIRS for p in rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts and all(p.isidentifier() for p in parts):
            found.append((".".join(parts), path))
    return found


def _call_name(node):
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def candidates(source):
    """WSGI specs the code suggests, best first: an app object in an entry module (wsgi.py,
    app.py, ...), any module-level Flask(...) object, then argument-less app factories."""
    found = {}
    for module, path in modules(source):
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except (SyntaxError, ValueError):
            continue
        entry = module.rsplit(".", 1)[-1] in ENTRY_MODULES
        where = str(path.relative_to(source))
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                name, called = node.targets[0].id, _call_name(node.value)
                if called == "Flask" or (called in FACTORIES and name in ("app", "application")):
                    rank = (0 if entry and name in ("app", "application") else 1, module.count("."))
                    found.setdefault(f"{module}:{name}", Candidate(
                        f"{module}:{name}", f"the app object {name} in {where}", rank))
            elif isinstance(node, ast.FunctionDef) and node.name in FACTORIES:
                a = node.args  # callable without arguments: every parameter has a default
                if len(a.defaults) == len(a.posonlyargs) + len(a.args) \
                        and all(d is not None for d in a.kw_defaults):
                    text = f"{module}:{node.name}()"
                    found.setdefault(text, Candidate(
                        text, f"the app factory {node.name}() in {where}", (2, module.count("."))))
    return sorted(found.values(), key=lambda c: c.rank)


def find_source(root):
    """(source directory relative to root, candidates): the first of src/, the project
    itself, app/ and the other top-level directories that holds requirements.txt and a
    Flask app. Raises OpsError saying what is missing."""
    root = Path(root)
    dirs = [root / "src", root, root / "app"] + sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
        and d.name not in SKIP_DIRS | {"src", "app"})
    with_reqs = [d for d in dirs if dependencies_file(root, d)]
    for d in with_reqs:
        found = candidates(d)
        if found:
            return str(d.relative_to(root)) if d != root else ".", found
    apps = [d for d in dirs if d.is_dir() and candidates(d)]
    if apps and not with_reqs:
        raise OpsError(f"{apps[0]} holds a Flask app but no requirements.txt or pyproject.toml "
                       "with [project] dependencies: flask-ops builds the app's dependencies "
                       f"from one (e.g. `pip freeze > {apps[0] / 'requirements.txt'}`)")
    if apps:
        raise OpsError(f"the Flask app is in {apps[0]} but requirements.txt is in "
                       f"{with_reqs[0]}: put requirements.txt next to the app's code (the "
                       "release ships that directory)")
    raise OpsError(f"no Flask app found under {root}: no module creates Flask(...) or defines "
                   f"{', '.join(FACTORIES)} (run fab init in the project's directory)")


# Where projects keep a pinned requirements file when it is not requirements.txt (the
# production set first: a "base" or "common" file is what the others include).
REQUIREMENTS_ELSEWHERE = ("requirements/production.txt", "requirements/prod.txt",
                          "requirements/base.txt", "requirements/common.txt",
                          "requirements/main.txt", "requirements-prod.txt")


def dependencies_file(root, source):
    """The file the app's dependencies come from: requirements.txt in source, else a
    pyproject.toml with dependencies in source or at the project root (as settings would find
    them without `requirements:`), else a pinned file that must be named: the one
    hatch-requirements-txt reads, or requirements/production.txt and its kin."""
    for path in (source / "requirements.txt", source / "pyproject.toml", Path(root) / "pyproject.toml"):
        if path.is_file() and (path.name == "requirements.txt" or _declares_dependencies(path)):
            return path
    if (source / "setup.py").is_file():
        return source / "setup.py"  # install_requires: its build backend reports them
    for name in _hatch_requirements(source / "pyproject.toml") + list(REQUIREMENTS_ELSEWHERE):
        path = source / name
        # pip-compile's pinned output next to an .in file first
        for candidate in (path.with_suffix(".txt"), path) if path.suffix == ".in" else (path,):
            if candidate.is_file() and candidate.resolve().is_relative_to(source.resolve()):
                return candidate
    return None


def _pyproject(path):
    """A pyproject.toml's data; {} when there is none or it is not valid TOML (init guesses
    from what it can read; the build reads it strictly)."""
    try:
        return requirements_mod._toml(path) if path.is_file() else {}
    except OpsError:
        return {}


def _table(data, *keys):
    """data[k1][k2]... when each is a table, else {}."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _hatch_requirements(path):
    """The files hatch-requirements-txt reads the project's dependencies from ([]: none)."""
    files = _table(_pyproject(path), "tool", "hatch", "metadata", "hooks", "requirements_txt").get("files")
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _declares_dependencies(path):
    data = _pyproject(path)
    return "dependencies" in _table(data, "project") or "dependencies" in _table(data, "tool", "poetry")


def project_name(root):
    """[project].name (or Poetry's) from the project's pyproject.toml, None without one."""
    data = _pyproject(Path(root) / "pyproject.toml")
    name = _table(data, "project").get("name") or _table(data, "tool", "poetry").get("name")
    return name if isinstance(name, str) else None


def app_name(root, found):
    """A name for the app: the project's ([project].name), else its package's, else the
    project directory's, as an identifier."""
    if project_name(root):
        return _identifier(project_name(root))
    for c in found:
        module = c.text.split(":")[0].split(".")[0]
        if module not in ENTRY_MODULES:
            return _identifier(module)
    return _identifier(Path(root).resolve().name)


def _identifier(text):
    name = re.sub(r"[^a-z0-9_]", "_", text.lower()).lstrip("0123456789_")[:31] or "app"
    return name if name not in keys.RESERVED_USERS else f"{name}_app"


def inspect_app(root, source, found, requirements=None, python_path="."):
    """Import the app in a build venv made from its requirements: what the driver reports."""
    raw = {"app_name": app_name(root, found), "source": source, "wsgi": found[0].text,
           "server_names": ["init.invalid"], "python_path": python_path}
    if requirements:
        raw["requirements"] = requirements
    s = settings_mod.load(raw, project_root=root)
    python = build.venv(s) / "bin" / "python"
    specs = []
    for c in found:
        try:
            specs.append({"text": c.text,
                          "spec": settings_mod.load({**raw, "wsgi": c.text}, project_root=root,
                                                    check_files=False).wsgi_spec.as_json()})
        except OpsError:
            continue
    probe = json.dumps(["/", *HEALTH_ROUTES])
    # Imported as a release ships it (its own metadata included), in a copy: what the import
    # writes (an instance folder, logs) never lands in the project.
    source = build.stage_source(s, build.private_dir(s, "init-source"))
    return build.run_driver(python, DRIVER, [source, json.dumps(specs), probe, python_path],
                            "importing the app")


def plain_get(route):
    return "GET" in route["methods"] and not route["arguments"]


def findings(app):
    """What the description can say about the app: health URL, streaming paths, the stream
    the smoke test times, the pages it fetches."""
    routes = app["routes"]
    statics = app["static_prefixes"]
    gets = [r["rule"] for r in routes if plain_get(r)
            and not any(settings_mod.url_under(r["rule"], p) for p in statics)]
    # A page the smoke test checks must answer a visitor without a session: 2xx here, in the
    # build venv (a login redirect or an error would fail the first deploy).
    answers = {r["rule"] for r in routes if 200 <= (r.get("anonymous_status") or 0) < 300}
    health = next((h for h in HEALTH_ROUTES if h in gets and h in answers), None)
    def paths(wanted):
        found = []
        for r in routes:
            if not wanted(r) or "GET" not in r["methods"]:
                continue
            path = r["rule"].split("<")[0]
            path = path if not r["arguments"] else path.rsplit("/", 1)[0] + "/"
            if len(path) > 1 and not any(settings_mod.url_under(path, p) or
                                         settings_mod.url_under(p, path) for p in statics):
                found.append(path)
        return sorted(set(found))

    websockets = paths(lambda r: r.get("websocket"))
    streaming = [p for p in paths(lambda r: r["streams"] and not r.get("websocket"))
                 if p not in websockets]
    stream = next((r["rule"] for r in routes if r["streams"] and plain_get(r)
                   and r["rule"] in streaming and r["rule"] in answers), "")
    if "/" in gets and "/" in answers:
        smoke = "/"
    else:
        smoke = health or None
    return {"healthz": health, "streaming": streaming, "smoke_stream": stream, "smoke": smoke,
            "websockets": websockets}


def _y(value):
    """A YAML scalar or flow list (JSON is valid YAML)."""
    return json.dumps(value)


def _one_line(text):
    """Text from the app (a route, a file name) as it may appear in a YAML comment: control
    characters escaped, so a newline in a route cannot start a line of YAML."""
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in str(text))


def _line(text, comment=""):
    """One line of the deploy section, its comment aligned."""
    return f"  {text:30} # {_one_line(comment)}" if comment else f"  {text}"


def _other_candidates(others, failed):
    """Comment lines naming the WSGI candidates init did not choose, and why."""
    if not others:
        return []
    lines = [_line("#   chosen as the first that imports of: an app object in an entry "
                   "module (wsgi.py, app.py, ...),"),
             _line("#   any other module-level Flask(...) object, an app factory; also found:")]
    for text in others[:5]:
        lines.append(_line(f"#     {text}" + ("  (could not be imported)" if text in failed else "")))
    if len(others) > 5:
        lines.append(_line(f"#     ... and {len(others) - 5} more"))
    return lines


def fabric_yaml(name, source, wsgi_why, app, deps="requirements.txt", requirements=None,
                python_path=".", others=()):
    """The commented fabric.yaml text: found values set, the rest commented with defaults.
    requirements: the dependencies file relative to source when settings would not find it
    by itself (written as the `requirements:` key). others: the other WSGI candidates, by
    their `wsgi` text, best first."""
    f = findings(app)
    lines = [
        "# flask-ops: how this app is deployed. Written by `fab init` from importing the app;",
        "# review it, fill in server_names and hosts (or name a host: fab -H HOST ...), then",
        "#   fab provision deploy        (fab --list: every task; docs/reference.md: every key)",
        "deploy:",
        _line(f"app_name: {name}", "names its user, group, service and site"),
        _line(f"source: {_y(source)}", "shipped as each release"),
        *([_line(f"python_path: {_y(python_path)}", f"found: a {python_path}/ layout; the app "
                 "is imported from there")] if python_path != "." else []),
        _line(f"requirements: {_y(requirements)}", f"found: {deps}") if requirements else
        _line(f"# dependencies: {deps}", "found (requirements: to name another file)"),
        _line(f"wsgi: {_y(app['wsgi'])}", f"found: {wsgi_why}"),
        *_other_candidates(others, app.get("failed", ())),
        _line("server_names:", "REQUIRED: the names the site answers, e.g. [shop.example.com]"),
        _line("# hosts: [web1.example.com]", "where fab deploy goes without -H (SSH hosts)"),
    ]
    if app["static_url"] and app["static_url"] != "/static/":
        lines.append(_line(f"static_url: {_y(app['static_url'])}", "found: the app's static_url_path"))
    if app["static_prefixes"]:
        prefixes = ", ".join(app["static_prefixes"])
        lines.append(_line(_one_line(f"# static files found at {prefixes}: the front server serves each")))
    else:
        lines.append(_line("# no static folder found: every URL goes to the app"))
    if f["healthz"]:
        lines.append(_line(f"healthz: {_y(f['healthz'])}", "found: a health route, smoke checks it first"))
    else:
        lines.append(_line("# healthz: /healthz", "none found (" + ", ".join(HEALTH_ROUTES[:3]) + ", ...)"))
    if f["streaming"]:
        lines.append(_line(f"streaming: {_y(f['streaming'])}", "found: these views stream"))
        if f["smoke_stream"]:
            lines.append(_line(f"smoke_stream: {_y(f['smoke_stream'])}", "smoke checks it arrives in pieces"))
    else:
        lines.append(_line("# streaming: [/feed]", "none found: paths whose responses stream"))
    if f["smoke"] and f["smoke"] != "/":
        lines += [_line("smoke:", "no GET / found: a page that must answer below 400"),
                  f"    - {{path: {_y(f['smoke'])}}}"]
    elif not f["smoke"]:
        lines.append(_line("# smoke: [{path: /}]", "no page answered a visitor with 2xx when "
                           "imported here: smoke checks / for a status below 400"))
    if f["websockets"]:
        lines += [_line("stack: nginx-gunicorn", "found websocket routes: gunicorn carries them"),
                  _line(f"websockets: {_y(f['websockets'])}", "found: these routes are websockets")]
    lines += [
        _line("# stack: nginx-uwsgi", "or nginx-gunicorn, apache-modwsgi") if not f["websockets"]
        else _line("# threads: 8", "each open websocket holds one of processes x threads"),
        _line("# nginx: default", "or proxy, cache"),
        _line("# env:", "plain values for the app's environment"),
        _line("#   LOG_LEVEL: info"),
        _line("# secrets:", "read here at deploy time, never from the repository"),
        _line("#   API_TOKEN: {env: MY_API_TOKEN}", "or {file: ~/path}, {command: pass show x}"),
        _line("# stages:", "one file for several: fab stage production deploy"),
        _line("#   staging: {hosts: [staging1], server_names: [staging.example.com]}"),
        _line("#   production: {hosts: [web1.example.com], server_names: [example.com]}"),
        "#",
        "# Routes found (as `flask routes` lists them):",
    ]
    for r in app["routes"][:40]:
        mark = "  (websocket)" if r.get("websocket") else "  (streams)" if r["streams"] else ""
        lines.append(_one_line(f"#   {','.join(r['methods']):12} {r['rule']}{mark}"))
    if len(app["routes"]) > 40:
        lines.append(f"#   ... and {len(app['routes']) - 40} more")
    return "\n".join(lines) + "\n"


def plan(root):
    """{file name: text} that fab init would write in root (existing files included)."""
    root = Path(root)
    source, found = find_source(root)
    python_path = "."
    if source == "src" and not (root / "src" / "requirements.txt").is_file() \
            and dependencies_file(root, root):
        # A src/ layout: the project's root ships too (its migrations, scripts and config
        # beside src/, as `pip install .` has them), and Python imports the app from src/.
        source, python_path = ".", "src"
    deps = dependencies_file(root, root / source)
    default = deps.name in ("pyproject.toml", "setup.py") or deps == root / source / "requirements.txt"
    requirements = None if default else str(deps.relative_to(root / source))
    app = inspect_app(root, source, found, requirements, python_path)
    why = next(c.why for c in found if c.text == app["wsgi"])
    lock = next((n for n in requirements_mod.LOCK_FILES if deps and deps.name == "pyproject.toml"
                 and deps.with_name(n).is_file()), None)
    described = str(deps.relative_to(root)) + (f", pinned by {lock}" if lock else "") + (
        " (its backend's install_requires)" if deps.name == "setup.py" else "")
    others = [c.text for c in found if c.text != app["wsgi"]]
    text = fabric_yaml(app_name(root, found), source, why, app, described, requirements,
                       python_path, others)
    _check(text, root)
    return {"fabric.yaml": text, "fabfile.py": FABFILE}


def _check(text, root):
    """What init writes loads as settings once server_names is filled in."""
    import yaml
    raw = yaml.safe_load(text)["deploy"]
    raw["server_names"] = ["example.com"]
    settings_mod.load(raw, project_root=root)


def write(root, files, out=print):
    """Write each file that does not exist yet; say which were kept."""
    for name, text in files.items():
        path = Path(root, name)
        if path.exists() or path.is_symlink():
            out(f"kept     {name} (exists; not overwritten)")
            continue
        path.write_text(text)
        out(f"wrote    {name}")
