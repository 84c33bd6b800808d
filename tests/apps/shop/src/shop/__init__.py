"""An app as users write them, not as the sample is: an app factory, a blueprint registered
under a url_prefix with its own static folder (Flask's documented pattern), a JSON API, a
streaming response, and no health route."""

import hashlib
import os
import time

from flask import Flask, Response, jsonify, stream_with_context

from .admin import bp as admin_bp


def create_app():
    app = Flask(__name__)
    app.register_blueprint(admin_bp, url_prefix="/admin")

    @app.get("/")
    def index():
        return ('<!doctype html><link rel="stylesheet" href="/static/shop.css">'
                '<script src="/admin/admin-static/admin.js"></script><h1>The shop</h1>')

    @app.get("/api/items")
    def items():
        return jsonify(items=["tea", "cake"], secret_key_set=bool(os.environ.get("SECRET_KEY")))

    @app.get("/api/config")
    def config():
        # What the deploy gave the app: a plain value, and a secret's digest (never the secret).
        token = os.environ.get("SHOP_TOKEN")
        return jsonify(greeting=os.environ.get("SHOP_GREETING"),
                       token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else None)

    @app.get("/feed")
    def feed():
        def lines():
            for i in range(4):
                yield f"item {i}\n"
                time.sleep(0.4)
        # The app asks every proxy in front of it not to buffer this one response.
        return Response(stream_with_context(lines()), mimetype="text/plain",
                        headers={"X-Accel-Buffering": "no"})

    return app
