"""The benchmark scripts stay runnable: each imports and parses its options. Their runs (and
figures) are `make bench`'s, never the test suite's: a benchmark's repetitions against every
peer are minutes of the suite that prove nothing a user would notice."""

import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_imports_and_parses_its_options(script):
    path = ROOT / "bench" / script
    runnable = "__main__" in path.read_text()
    argv = [str(path), "--help"] if runnable else [
        "-c", f"import sys; sys.path.insert(0, 'bench'); import {path.stem}"]
    out = subprocess.run([sys.executable, *argv], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=60)
    assert out.returncode == 0, out.stdout[-3000:]
    assert out.stdout.startswith("usage:") if runnable else out.stdout == "", out.stdout[:500]
