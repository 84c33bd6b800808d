"""Runs inside the app's build environment: `python collect_driver.py SOURCE WSGI_JSON OUT`
(WSGI_JSON: ops.config.wsgispec's JSON, or @FILE holding it).

Imports the app and collects every static folder (the app's and each blueprint's, under any
`url_prefix`) with Flask-Collect into OUT, laid out as Flask's URLs: the file Flask serves at
/admin/admin-static/admin.js is OUT/admin/admin-static/admin.js. Then it asks Flask itself
(the test client) for every file and compares the bytes, so the front server, which serves
OUT at those URLs, answers exactly what Flask would.
Prints one JSON object: files, the URL prefixes to serve, one sample URL per prefix with its
sha256. Exits 2 with a message on any problem.
"""

import hashlib
import importlib
import io
import json
import os
import sys
from contextlib import redirect_stdout
from urllib.parse import unquote

PROBE = "flask-ops-probe"


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(2)


def static_owners(app):
    """(owner, endpoint, URL prefix) for the app and each blueprint that has static files."""
    from flask import url_for

    owners = []
    with app.test_request_context():
        for owner in [app, *app.blueprints.values()]:
            if not (owner.has_static_folder and os.path.isdir(owner.static_folder)):
                continue
            endpoint = "static" if owner is app else f"{owner.name}.static"
            try:
                url = unquote(url_for(endpoint, filename=PROBE))
            except Exception:  # a blueprint with a static folder but no static route
                continue
            owners.append((owner, endpoint, url[:-len(PROBE)]))
    return owners


def collect(app, owners, out):
    """Flask-Collect once per static folder, each into OUT/<its URL prefix>: Flask-Collect's
    own layout places blueprint files by the blueprint's static_url_path alone, which is not
    where Flask serves them once the blueprint has a url_prefix. Returns the outermost
    prefixes (the front server's locations; nested ones are inside them)."""
    from flask_collect import Collect

    for owner, _, prefix in owners:
        app.config["COLLECT_STATIC_ROOT"] = os.path.join(out, prefix.strip("/"))
        app.config["COLLECT_STORAGE"] = "flask_collect.storage.file"
        Collect(app)  # re-initialise with this root, whether or not the app set it up
        state = app.extensions["collect"]
        state.filter = lambda items, owner=owner: [i for i in items if i is owner]
        state.static_url = ""  # falsy: every file relative to its own folder
        with redirect_stdout(io.StringIO()):
            state.collect(verbose=False)
    prefixes = sorted({p for _, _, p in owners})
    return [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]


def verify(app, owners, out):
    """Every file Flask serves is in OUT at its URL, with Flask's bytes; one sample per prefix."""
    client, files, wrong, samples = app.test_client(), 0, [], {}
    for owner, endpoint, prefix in owners:
        for root, _, names in os.walk(owner.static_folder):
            for name in sorted(names):
                rel = os.path.relpath(os.path.join(root, name), owner.static_folder)
                url = prefix + rel.replace(os.sep, "/")
                path = os.path.join(out, url.lstrip("/"))
                resp = client.get(url)
                served = resp.get_data() if resp.status_code == 200 else None
                resp.close()
                files += 1
                if served is None:
                    continue  # shadowed by another route or file: Flask does not serve it here
                if not os.path.isfile(path):
                    wrong.append(f"{endpoint}:{rel} is served by Flask at {url} but was not collected")
                    continue
                with open(path, "rb") as f:
                    data = f.read()
                if data != served:
                    wrong.append(f"{url}: the collected file differs from what Flask serves "
                                 "(two static folders give the same URL?)")
                elif not any(part.startswith(".") for part in url.split("/")):
                    samples.setdefault(prefix, {"url": url,
                                                "sha256": hashlib.sha256(data).hexdigest()})
    return files, wrong, samples


class Refused(Exception):
    """The app cannot be loaded as WSGI names it; the message says why."""


def load_app(spec, source):
    """The app as the release's entry module gets it: the object, or the factory's result.
    The module must be the app's own (inside SOURCE), not one the venv happens to have.
    Raises Refused."""
    where = f"{spec['module']}:{spec['name']}"
    try:
        module = importlib.import_module(spec["module"])
        target = getattr(module, spec["name"])
        app = target(*spec["args"], **spec["kwargs"]) if spec["call"] else target
    except SystemExit as exc:  # the app calls sys.exit() at import (a missing setting...)
        raise Refused(f"cannot load the app from {where}: it called sys.exit({exc.code!r}) "
                      "while being imported") from None
    except Exception as exc:  # the app's own import error, reported as such
        raise Refused(f"cannot load the app from {where}: {type(exc).__name__}: {exc}") from None
    path = os.path.realpath(getattr(module, "__file__", None) or "")
    if not path.startswith(os.path.realpath(source) + os.sep):
        raise Refused(f"{spec['module']} is not a module of the app's source ({source}): "
                      "wsgi must name the app's own module")
    if not (hasattr(app, "test_client") and hasattr(app, "blueprints")):
        raise Refused(f"{where} is {type(app).__name__}, not a Flask app"
                      + ("" if spec["call"] else " (if it is an app factory, write it as a "
                         f"call: {where}())"))
    return app


def import_path(source, python_path):
    """As the release runs it: in its directory, python_path (src in a src/ layout) first on
    sys.path, the release's root after it."""
    os.chdir(source)
    sys.path[:0] = [os.path.join(source, python_path)] + ([source] if python_path != "." else [])


def main(source, wsgi, out, python_path="."):
    import_path(source, python_path)
    try:
        importlib.import_module("flask_collect")
    except ImportError as exc:
        fail(f"Flask-Collect is not importable ({exc}); install flask-collect-invenio")
    if wsgi.startswith("@"):  # the spec in a file (from tools that template argv: Ansible)
        with open(wsgi[1:]) as f:
            wsgi = f.read()
    try:
        app = load_app(json.loads(wsgi), source)
    except Refused as exc:
        fail(str(exc))
    owners = static_owners(app)
    root = os.path.realpath(source)
    for owner, endpoint, _ in owners:
        folder = os.path.realpath(owner.static_folder)
        if folder != root and not folder.startswith(root + os.sep):
            fail(f"the static folder of {endpoint} ({owner.static_folder}) is outside the app's "
                 "source: only the source's own files are collected and served")
    prefixes = collect(app, owners, out)
    files, wrong, samples = verify(app, owners, out)
    if wrong:
        fail("; ".join(wrong[:5]) + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""))
    app_static = (app.static_url_path or "/static").rstrip("/") + "/" if app.has_static_folder else None
    # Flask's instance folder (its place for SQLite and a per-deployment config.py), relative
    # to the release when it lies inside it: the deploy links it to a persistent directory.
    instance = os.path.relpath(os.path.realpath(app.instance_path), os.path.realpath(source))
    if instance.startswith("..") or os.path.isabs(instance) or instance == ".":
        instance = None
    print(json.dumps({"files": files, "prefixes": prefixes, "app_static_url": app_static,
                      "samples": [samples[p] for p in sorted(samples)],
                      "instance": instance and instance.replace(os.sep, "/")}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
