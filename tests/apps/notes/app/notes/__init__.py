"""A small app that keeps its data in SQLite under the app's data directory and migrates its
schema with `flask migrate` (the before_switch hook), plus a worker that writes a heartbeat.
The e2e tests change MIGRATIONS and the columns `/` reads to ship a migration."""

import os
import sqlite3

from flask import Flask, jsonify

MIGRATIONS = [
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
]
READS = ["id", "body"]  # the columns this release's code reads

app = Flask(__name__)


def connect():
    return sqlite3.connect(os.environ["NOTES_DB"])


@app.get("/")
def index():
    with connect() as db:
        rows = db.execute(f"SELECT {', '.join(READS)} FROM notes ORDER BY id").fetchall()
    return jsonify(reads=READS, notes=[list(r) for r in rows],
                   release=os.environ.get("FLASK_OPS_RELEASE"))


@app.post("/notes")
def add():
    with connect() as db:
        db.execute("INSERT INTO notes (body) VALUES ('hello')")
    return jsonify(ok=True), 201


@app.cli.command("migrate")
def migrate():
    """Apply the migrations this release has and the database lacks."""
    with connect() as db:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        done = row[0] or 0
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version > done:
                print(f"migration {version}: {sql}")
                db.execute(sql)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    print("schema at version", len(MIGRATIONS))
