"""Take the host's deploy lock: a directory created atomically, holding who took it.

Arguments: STATE_DIR INFO_JSON. Prints one JSON line: {"acquired": bool}. A held lock is
left alone; the facts that follow say whose it is.
"""
import json
import os
import sys


def acquire(state, info):
    if not os.path.isdir(state):
        # The app was never provisioned here (provision makes the state directory): there is
        # nothing to guard, preflight refuses the deploy, and the host must keep no trace
        # of it, so nothing is created.
        return True
    lock = state + "/lock"
    try:
        os.mkdir(lock)
    except FileExistsError:
        return False
    with open(lock + "/info.json", "w") as f:
        json.dump(info, f)
    return True


if __name__ == "__main__":
    print(json.dumps({"acquired": acquire(sys.argv[1], json.loads(sys.argv[2]))}))
