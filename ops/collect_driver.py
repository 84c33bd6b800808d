"""Runs inside the app's build environment: `python collect_driver.py SOURCE WSGI OUT`.

Imports the app, collects every static folder (app and blueprints) with Flask-Collect into
OUT, then proves each file sits at the URL Flask itself would serve it at, so the front
server, which serves OUT under the static URL, answers exactly what Flask would.
Prints one JSON object; exits 2 with a message on any problem.
"""

import importlib
import io
import json
import os
import sys
from urllib.parse import unquote
from contextlib import redirect_stdout


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(2)


def main(source, wsgi, out):
    sys.path.insert(0, source)
    os.chdir(source)
    module_name, attr = wsgi.split(":")
    try:
        from flask_collect import Collect
    except ImportError as exc:
        fail(f"Flask-Collect is not importable ({exc}); install flask-collect-invenio")
    try:
        app = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # the app's own import error, reported as such
        fail(f"cannot import {wsgi}: {type(exc).__name__}: {exc}")
    app.config["COLLECT_STATIC_ROOT"] = out
    app.config["COLLECT_STORAGE"] = "flask_collect.storage.file"
    Collect(app)  # re-initialise with our root, whether or not the app set it up
    with redirect_stdout(io.StringIO()):
        app.extensions["collect"].collect(verbose=False)

    static_url = (app.static_url_path or "/static").rstrip("/") + "/"
    files, mismatches = 0, []
    with app.test_request_context():
        from flask import url_for
        for owner in [app, *app.blueprints.values()]:
            if not (owner.has_static_folder and os.path.isdir(owner.static_folder)):
                continue
            endpoint = "static" if owner is app else f"{owner.name}.static"
            for root, _, names in os.walk(owner.static_folder):
                for name in names:
                    rel = os.path.relpath(os.path.join(root, name), owner.static_folder)
                    # url_for quotes ("my file.css" -> "my%20file.css"); the front server
                    # decodes before it maps a URL to a file, so compare decoded paths.
                    url = unquote(url_for(endpoint, filename=rel))
                    files += 1
                    if not url.startswith(static_url) or not os.path.isfile(
                            os.path.join(out, url[len(static_url):])):
                        mismatches.append(f"{endpoint}:{rel} is served by Flask at {url}, "
                                          f"which is not under {static_url} in the collected tree")
    if mismatches:
        fail("; ".join(mismatches) + ". Give the blueprint static_url_path="
             f"'{static_url}<name>' and no url_prefix for its static files.")
    print(json.dumps({"files": files, "static_url": static_url}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
