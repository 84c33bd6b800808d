"""flask-ops: deploy a Flask app to Ubuntu/Debian hosts and prove it works there."""

__version__ = "0.1.0"
