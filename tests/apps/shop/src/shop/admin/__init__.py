from flask import Blueprint

bp = Blueprint("admin", __name__, static_folder="static", static_url_path="/admin-static")


@bp.get("/")
def index():
    return "the shop's admin"
