"""The sample app: every Flask feature the toolkit must serve correctly in production."""

import datetime
import locale
import os
import sys
import time

from flask import (Flask, Response, flash, jsonify, redirect, render_template, request,
                   session, stream_with_context, url_for)
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Request

from reports import bp as reports_bp

#: Set by flask-ops' entry module, so smoke checks can prove which release runs.
RELEASE = os.environ.get("FLASK_OPS_RELEASE", "dev")
#: The one directory a deployed app may write (flask-ops sets it; kept across releases).
DATA_DIR = os.environ.get("FLASK_OPS_DATA_DIR", os.path.join(os.path.dirname(__file__), "instance"))
STREAM_DELAY = float(os.environ.get("SAMPLE_STREAM_DELAY", "0.5"))


FORWARDING = ("X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Proto",
              "X-Forwarded-Server", "X-Forwarded-Ssl", "Forwarded", "X-Original-URL",
              "X-Rewrite-URL")


def proxyfix_url_root(environ):
    """The URL root a ProxyFix(x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1) app sees."""
    seen = {}

    def inner(env, start_response):
        seen["root"] = Request(env).url_root
        return []

    ProxyFix(inner, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)(dict(environ),
                                                                       lambda *a: None)
    return seen["root"]


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-not-secret"),
        UPLOAD_FOLDER=os.environ.get("UPLOAD_FOLDER", os.path.join(DATA_DIR, "uploads")),
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
        COLLECT_STATIC_ROOT=os.environ.get("COLLECT_STATIC_ROOT", "build/static"),
    )
    app.config.update(config or {})
    app.register_blueprint(reports_bp)

    @app.template_filter("datetime")
    def format_datetime(value, fmt="%Y-%m-%d %H:%M"):
        """Custom Jinja2 filter: format a datetime or a UNIX timestamp."""
        if isinstance(value, (int, float)):
            value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        return value.strftime(fmt)

    @app.route("/")
    def index():
        return render_template("index.html", now=datetime.datetime.now(datetime.timezone.utc))

    @app.route("/hello")
    def hello():
        return "Hello, World!"

    @app.route("/echo", methods=["GET", "POST"])
    def echo():
        """Query string on GET, form fields on POST."""
        data = request.form if request.method == "POST" else request.args
        return jsonify({key: data.getlist(key) for key in data})

    @app.route("/api/sum", methods=["GET", "POST"])
    def api_sum():
        payload = request.get_json(silent=True) if request.method == "POST" else None
        numbers = payload.get("numbers") if isinstance(payload, dict) else request.args.getlist("n")
        try:
            values = [float(n) for n in numbers or []]
        except (TypeError, ValueError):
            return jsonify(error="numbers must be numeric"), 400
        total = sum(values)
        return jsonify(sum=int(total) if total.is_integer() else total, count=len(values))

    @app.route("/time")
    def stream_time():
        """A generator response: each line must reach the client as it is produced."""
        count = min(request.args.get("count", 5, type=int), 100)
        delay = min(request.args.get("delay", STREAM_DELAY, type=float), 5.0)

        def generate():
            for i in range(count):
                if i:
                    time.sleep(delay)
                yield f"{i} {time.time():.3f}\n"

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @app.route("/timeline")
    def timeline():
        """A page whose path starts like the streaming one (/time): served as any page."""
        return "timeline: not streamed"

    @app.route("/counter")
    def counter():
        session["visits"] = session.get("visits", 0) + 1
        return f"visits: {session['visits']}"

    @app.route("/upload", methods=["GET", "POST"])
    def upload():
        if request.method == "POST":
            file = request.files.get("file")
            if not file or not file.filename:
                flash("No file selected.")
                return redirect(url_for("upload"))
            name = secure_filename(file.filename)
            if not name:
                flash("That file name is not allowed.")
                return redirect(url_for("upload"))
            os.makedirs(app.config["UPLOAD_FOLDER"], exist_ok=True)
            file.save(os.path.join(app.config["UPLOAD_FOLDER"], name))
            flash(f"Uploaded {name}.")
            return redirect(url_for("upload"))
        return render_template("upload.html")

    @app.route("/flash")
    def flash_message():
        flash("Flashing works.")
        return redirect(url_for("index"))

    @app.route("/whoami")
    def whoami():
        """What the app believes about the client: proves forged proxy headers do not pass."""
        return jsonify(remote_addr=request.remote_addr,
                       forwarded_for=request.headers.get("X-Forwarded-For"),
                       forwarded_proto=request.headers.get("X-Forwarded-Proto"),
                       scheme=request.scheme, host=request.host,
                       # The scheme of the Authorization header the app received (never
                       # its credentials): API clients' Basic/Bearer must reach the app.
                       authorization=(request.headers.get("Authorization") or " ").split(" ")[0]
                       or None,
                       # The front server's id of this request (its access log has it too).
                       request_id=request.headers.get("X-Request-ID"),
                       # The Host header as the app received it, and every forwarding header
                       # a proxy-aware app believes: a client's copies must never arrive.
                       http_host=request.environ.get("HTTP_HOST"),
                       forwarded={name: request.headers.get(name) for name in FORWARDING
                                  if request.headers.get(name) is not None},
                       # Where links point in an app wrapped as Flask's docs recommend behind
                       # a proxy (ProxyFix trusting one hop of every X-Forwarded-* header).
                       proxyfix_url_root=proxyfix_url_root(request.environ),
                       # The encoding of file names and text files (UTF-8, not ascii).
                       fs_encoding=sys.getfilesystemencoding(),
                       text_encoding=locale.getpreferredencoding(False))

    @app.route("/healthz")
    def healthz():
        return jsonify(status="ok", release=RELEASE, cwd=os.getcwd())

    return app


try:
    from flask_collect import Collect
except ImportError:  # collecting is a build step; the app runs without it
    Collect = None

app = create_app()
if Collect is not None:
    Collect(app)
