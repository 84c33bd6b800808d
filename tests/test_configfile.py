"""Config files read strictly with Invoke's public loading methods (configfile.StrictConfig)
and tasks run by our own executor, under the `flask-ops` program and under Fabric's own
`fab` alike, replacing nothing of Fabric's or Invoke's."""

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


@pytest.mark.parametrize("program", ["flask-ops", "fab"])
def test_neither_program_replaces_anything_of_fabric_or_invoke(project, program):
    """The flask-ops program is built with our config class and executor; Fabric's own fab
    is handed them (its public attributes) when the fabfile imports the tasks. Either way
    every function of Fabric's and Invoke's is their own after a run."""
    (project / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    probe = (
        "import fabric.executor, fabric.main, inspect, invoke.config; from ops import cli; "
        f"program = cli.program() if {program == 'flask-ops'!r} else fabric.main.program; "
        "program.run(['x', 'render', '--out', 'out'], exit=False); "
        "ours = [f'{c.__name__}.{n}' for c in (invoke.config.Config, fabric.executor.Executor) "
        "for n, f in vars(c).items() if inspect.isfunction(f) "
        "and not f.__module__.startswith(('invoke.', 'fabric.'))]; "
        "print(ours, type(program.config).__name__, program.executor_class.__module__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True,
                         text=True, check=True).stdout.splitlines()[-1].split()
    assert out == ["[]", "StrictConfig", "ops.tasks"]
    assert (project / "out/etc/nginx/sites-available/strict.conf").is_file()


@pytest.mark.parametrize("program", ["flask-ops", "fab"])
def test_exec_owns_the_words_after_the_dashes_under_both_programs(project, program):
    """Fabric runs the words after `--` on the -H hosts as a task of their own (and, with no
    host, refuses before any task runs): after `exec` they are exec's command alone."""
    (project / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    binary = FLASK_OPS if program == "flask-ops" else ROOT / ".venv/bin/fab"
    result = subprocess.run([str(binary), "exec", "--", "echo", "hi"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Was told to run a command" not in result.stderr
    assert "exec: this task needs a target host" in result.stderr, result.stderr
