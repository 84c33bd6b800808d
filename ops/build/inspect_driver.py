"""Runs inside the app's build environment: `python inspect_driver.py SOURCE CANDIDATES_JSON`.

Tries each candidate WSGI spec (as `fab init` found them in the code) until one loads as a
Flask app, the way the release's entry module will load it, then reports what `fab init`
writes into the app description: the spec, the app's static URL, every static URL prefix
(blueprints under a url_prefix included) and the routes, as `flask routes` lists them, each
marked when its view looks like it streams.
Prints one JSON object; {"error": ...} when no candidate loads.
"""

import importlib.util
import inspect
import json
import os
import re
import sys

# A view streams when its code builds a generator response (Flask's documented patterns).
STREAMS = re.compile(r"\byield\b|stream_with_context|stream_template|text/event-stream")


def _collect_driver():
    """collect_driver.py, loaded by path: putting ops/ on sys.path would let its modules
    (settings, plan, ...) shadow the app's own."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "collect_driver.py")
    spec = importlib.util.spec_from_file_location("flask_ops_collect_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def streams(view):
    view = inspect.unwrap(view)
    if inspect.isgeneratorfunction(view):
        return True
    try:
        return bool(STREAMS.search(inspect.getsource(view)))
    except (OSError, TypeError):
        return False


def routes(app):
    rows = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        view = app.view_functions.get(rule.endpoint)
        rows.append({"rule": rule.rule, "endpoint": rule.endpoint,
                     "methods": sorted(rule.methods - {"HEAD", "OPTIONS"}),
                     "arguments": sorted(rule.arguments),
                     "streams": bool(view and streams(view)),
                     # Flask-Sock (and Werkzeug's own) websocket routes
                     "websocket": bool(getattr(rule, "websocket", False))})
    return sorted(rows, key=lambda r: r["rule"])


def anonymous_status(app, rule):
    """The status a visitor without a session gets at a plain GET route (its body is not
    read: a stream is only started). None when the view raises."""
    client = app.test_client()
    try:
        resp = client.get(rule, buffered=False)
        status = resp.status_code
        resp.close()
        return status
    except Exception:
        return None


def main(source, candidates, probe="[]", python_path="."):
    driver = _collect_driver()
    driver.import_path(source, python_path)
    problems, failed = [], []
    for spec in json.loads(candidates):
        try:
            app = driver.load_app(spec["spec"], source)
        except driver.Refused as exc:
            problems.append(str(exc))
            failed.append(spec["text"])
            continue
        owners = driver.static_owners(app)
        static_url = ((app.static_url_path or "/static").rstrip("/") + "/"
                      if app.has_static_folder else None)
        found = routes(app)
        probe = set(json.loads(probe))
        for r in found:  # only the routes init may name (/, health, streams): no side effects
            if r["rule"] in probe or (r["streams"] and not r["arguments"]):
                if "GET" in r["methods"] and not r["arguments"]:
                    r["anonymous_status"] = anonymous_status(app, r["rule"])
        print(json.dumps({"wsgi": spec["text"], "static_url": static_url,
                          "static_prefixes": sorted({p for _, _, p in owners}),
                          "routes": found, "failed": failed}))
        return
    print(json.dumps({"error": "; ".join(problems) or "no candidate"}))
    sys.exit(2)


if __name__ == "__main__":
    main(*sys.argv[1:5])
