"""Config files through the `flask-ops` program: read strictly with Invoke's public loading
methods (configfile.StrictConfig) and run with our own executor, replacing nothing of
Fabric's or Invoke's; and the internals `fab` (Fabric's own program) still needs, held
against the installed Invoke so a release that moves them fails here first."""

import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLE

FLASK_OPS = ROOT / ".venv/bin/flask-ops"
DEPLOY = ("deploy:\n  app_name: strict\n  source: app\n  wsgi: app:app\n"
          "  server_names: [strict.test]\n")


@pytest.fixture
def project(tmp_path):
    import shutil
    shutil.copytree(SAMPLE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__", "build"))
    (tmp_path / "fabric.yaml").write_text(DEPLOY)
    return tmp_path


def flask_ops(cwd, *argv):
    return subprocess.run([str(FLASK_OPS), *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("text, says", [
    (DEPLOY + "  app_name: again\n", "duplicate key 'app_name'"),
    ("deplyo:\n  app_name: x\n", "'deplyo'"),
    ("deploy: [app_name\n", "line 2"),
])
def test_the_program_refuses_a_project_file_it_cannot_read_exactly(project, text, says):
    (project / "fabric.yaml").write_text(text)
    result = flask_ops(project, "render", "--out", str(project / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("flask-ops: ") and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (project / "out").exists()


def test_the_program_reads_runtime_files_strictly_and_applies_good_ones(project):
    (project / "prod.yaml").write_text("deploy:\n  server_names: [a.test]\n  server_names: [b.test]\n")
    refused = flask_ops(project, "-f", "prod.yaml", "render", "--out", str(project / "out"))
    assert refused.returncode == 1 and "prod.yaml: line 3: duplicate key 'server_names'" in refused.stderr
    (project / "over.py").write_text("import os\n")
    refused = flask_ops(project, "-f", "over.py", "render", "--out", str(project / "out"))
    assert refused.returncode == 1 and "'os' is a module" in refused.stderr
    (project / "prod.yaml").write_text("deploy:\n  server_names: [prod.test]\n")
    good = flask_ops(project, "-f", "prod.yaml", "render", "--out", str(project / "out"))
    assert good.returncode == 0, good.stderr
    site = (project / "out/etc/nginx/sites-available/strict.conf").read_text()
    assert "server_name prod.test;" in site


def test_the_program_replaces_nothing_of_fabric_or_invoke(project):
    probe = ("import sys; from ops import cli; program = cli.program(); "
             "from invoke.config import Config; from fabric.executor import Executor; "
             "from ops import configfile; "
             "moved = [n for n in configfile.PATCHED if getattr(Config, n).__module__ != 'invoke.config']; "
             "moved += ['expand_calls'] if Executor.expand_calls.__module__ != 'fabric.executor' else []; "
             "print(moved, program.config_class.__name__, program.executor_class.__module__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["[]", "StrictConfig", "ops.tasks"]


def test_the_internals_fab_needs_are_where_invoke_keeps_them():
    """Under `fab`, configfile.install_for_fab and tasks replace these; if Invoke or Fabric
    renames one, the strict reading under `fab` would silently stop: fail here instead."""
    from fabric.executor import Executor
    from invoke.config import Config

    from ops import configfile
    assert all(callable(getattr(Config, name, None)) for name in configfile.PATCHED)
    assert callable(Executor.expand_calls)
    # Invoke picks a file's loader by its suffix: `_load_` + yaml, yml, json or py.
    import inspect
    assert '"_load_{}".format(type_)' in inspect.getsource(Config._load_file)
