import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_app"
sys.path.insert(0, str(SAMPLE))


@pytest.fixture
def app():
    from app import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "test", "UPLOAD_FOLDER": None})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def load():
    """Settings from a raw `deploy:` mapping, resolved against the repository."""
    from ops import settings

    return lambda **raw: settings.load(raw, project_root=ROOT)
