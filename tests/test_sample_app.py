import io

import pytest


def test_hello_world(client):
    assert client.get("/hello").data == b"Hello, World!"


def test_index_links_assets_through_static_url(client):
    page = client.get("/").get_data(as_text=True)
    assert "/static/css/site.css" in page and "/static/js/site.js" in page
    assert "UTC" in page  # rendered with the custom datetime filter


def test_query_string_and_form_echo(client):
    assert client.get("/echo?a=1&a=2&b=x").get_json() == {"a": ["1", "2"], "b": ["x"]}
    assert client.post("/echo", data={"name": "Ada"}).get_json() == {"name": ["Ada"]}


def test_json_sum_api(client):
    assert client.post("/api/sum", json={"numbers": [1, 2, 3.5]}).get_json() == {
        "sum": 6.5, "count": 3}
    assert client.get("/api/sum?n=2&n=40").get_json() == {"sum": 42, "count": 2}
    assert client.post("/api/sum", json={"numbers": ["x"]}).status_code == 400


def test_streaming_time_is_a_generator(client):
    response = client.get("/time?count=3&delay=0")
    assert response.is_streamed
    lines = response.get_data(as_text=True).splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "2"]


def test_session_counter_counts_per_client(client, app):
    assert client.get("/counter").data == b"visits: 1"
    assert client.get("/counter").data == b"visits: 2"
    assert app.test_client().get("/counter").data == b"visits: 1"


def test_upload_uses_secure_filename(client, app, tmp_path):
    app.config["UPLOAD_FOLDER"] = str(tmp_path)
    response = client.post("/upload", data={"file": (io.BytesIO(b"hi"), "../../etc/passwd")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert b"Uploaded etc_passwd." in response.data  # flashed, with the sanitised name
    assert (tmp_path / "etc_passwd").read_bytes() == b"hi"


def test_upload_without_file_flashes_an_error(client):
    response = client.post("/upload", data={}, follow_redirects=True)
    assert b"No file selected." in response.data


def test_flash_message_shows_once(client):
    assert b"Flashing works." in client.get("/flash", follow_redirects=True).data
    assert b"Flashing works." not in client.get("/").data


@pytest.mark.parametrize("ts, expected", [(0, "1970-01-01 00:00")])
def test_datetime_filter(app, ts, expected):
    assert app.jinja_env.filters["datetime"](ts) == expected


def test_blueprint_page_and_its_static_file(client):
    page = client.get("/reports/").get_data(as_text=True)
    assert "/static/reports/reports.css" in page
    assert b".report" in client.get("/static/reports/reports.css").data


def test_healthz(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
