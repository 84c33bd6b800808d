"""Sign the guestbook. The database lives in Flask's instance folder; logs under logs/."""

import importlib.metadata
import logging
import os
import sqlite3
from logging.handlers import RotatingFileHandler

import click
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for

# As many apps do: the version from the installed project's metadata.
__version__ = importlib.metadata.version("guestbook")

bp = Blueprint("book", __name__)


def get_db():
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.db.row_factory = sqlite3.Row
    return g.db


def close_db(_exc=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@click.command("init-db")
def init_db_command():
    """Create the tables (keeps what is there)."""
    get_db().executescript(
        "CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "message TEXT NOT NULL)")
    click.echo("Initialized the database.")


@bp.route("/")
def index():
    entries = get_db().execute("SELECT name, message FROM entry ORDER BY id").fetchall()
    return render_template("index.html", entries=entries, version=__version__)


@bp.route("/sign", methods=["POST"])
def sign():
    name, message = request.form.get("name", "").strip(), request.form.get("message", "").strip()
    if name and message:
        db = get_db()
        db.execute("INSERT INTO entry (name, message) VALUES (?, ?)", (name, message))
        db.commit()
        current_app.logger.info("signed by %s", name)
    return redirect(url_for("book.index"))


def create_app():
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY=os.environ.get("SECRET_KEY", "dev"),
                            DATABASE=os.path.join(app.instance_path, "guestbook.sqlite"))
    app.config.from_pyfile("config.py", silent=True)
    os.makedirs(app.instance_path, exist_ok=True)
    # Logs next to the code, as many apps keep them.
    logs = os.path.join(os.path.dirname(app.root_path), "logs")
    os.makedirs(logs, exist_ok=True)
    handler = RotatingFileHandler(os.path.join(logs, "guestbook.log"), maxBytes=1_000_000,
                                  backupCount=3)
    handler.setLevel(logging.INFO)
    app.logger.addHandler(handler)
    app.logger.setLevel(logging.INFO)
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
    app.register_blueprint(bp)
    return app
