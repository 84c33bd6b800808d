"""A blueprint with its own static folder, served by the front server after collection."""

from flask import Blueprint, render_template

# No url_prefix: Flask would then serve the static files under /reports/static/..., a URL
# the collected tree (and so nginx) does not have. `flask collect` maps static_url_path.
bp = Blueprint("reports", __name__, static_folder="static",
               static_url_path="/static/reports", template_folder="templates")


@bp.route("/reports/")
def index():
    return render_template("reports/index.html")
