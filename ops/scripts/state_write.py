"""Merge keys into the host's state file, atomically (write a new file, rename it over).

Arguments: STATE_FILE UPDATES_JSON.
"""
import json
import os
import sys


def update(path, updates):
    state = {}
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    state.update(updates)
    with open(path + ".new", "w") as f:
        json.dump(state, f)
    os.replace(path + ".new", path)


if __name__ == "__main__":
    update(sys.argv[1], json.loads(sys.argv[2]))
