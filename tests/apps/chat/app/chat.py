"""A small Flask app with a websocket (Flask-Sock): what stack nginx-gunicorn is for.
Echoes each message with the release's greeting, streams the time, and says which scheme it
was reached by."""

import time

from flask import Flask, Response, jsonify, request
from flask_sock import Sock

GREETING = "chat v1"

app = Flask(__name__)
sock = Sock(app)


@app.get("/")
def index():
    return f'<!doctype html><title>chat</title><script src="/static/chat.js"></script><p>{GREETING}</p>'


@app.get("/hello")
def hello():
    return GREETING


@app.get("/whoami")
def whoami():
    return jsonify(scheme=request.scheme, host=request.host)


@app.get("/time")
def clock():
    def ticks():
        for n in range(3):
            yield f"tick {n}\n"
            time.sleep(0.3)
    return Response(ticks(), mimetype="text/plain")


@sock.route("/ws")
def echo(ws):
    while True:
        ws.send(f"{GREETING}: {ws.receive()}")
