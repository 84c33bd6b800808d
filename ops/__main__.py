"""`python -m ops init`: fab init for a project that has no fabfile yet (fab needs one to
find any task)."""

import sys

from .build import scaffold
from .errors import OpsError


def main(argv):
    if argv != ["init"]:
        print("usage: python -m ops init   (writes fabric.yaml and fabfile.py here; then fab --list)")
        return 2
    try:
        scaffold.write(".", scaffold.plan("."))
    except OpsError as exc:
        print(f"flask-ops: init: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
