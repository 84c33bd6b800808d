"""Print the app's last log lines (why it did not start), its secrets masked.

Usage: app_log.py JSON with {"units": [...], "files": [...], "env_file": PATH, "lines": N,
"since": EPOCH or null}. The values of the app's env file (SECRET_KEY, database URLs...) are
replaced by *** wherever they appear: a traceback may quote a connection string.
"""
import json
import re
import subprocess
import sys
import time

# What ends a failed start. A unit in a restart loop has started again by the time we look:
# the lines that say why are those before the last end, not the newest ones. The journal may
# not have them yet (journald reads the dying process's output asynchronously): we wait for
# an end, briefly.
ENDS = re.compile(r"GAME OVER|no app loaded|Main process exited|Failed with result|"
                  r"Traceback \(most recent call last\)")

spec = json.loads(sys.argv[1])
lines = int(spec["lines"])


def journal():
    argv = ["journalctl", "--no-pager", "-o", "cat", "-n", "5000"]
    if spec.get("since"):
        argv += ["--since", "@%d" % int(spec["since"])]
    for unit in spec["units"]:
        argv += ["-u", unit]
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, errors="replace", timeout=20).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return []


def last_failure(found):
    """The lines up to the last attempt's end (its traceback and what uWSGI said after)."""
    ends = [i for i, line in enumerate(found) if ENDS.search(line)]
    if not ends:
        return found[-lines:]
    last = ends[-1]
    while last + 1 < len(found) and last + 1 <= ends[-1] + 3 and not found[last + 1].startswith(
            ("[uWSGI]", "Starting ")):
        last += 1  # "Failed with result", "Failed to start" follow the end
    return found[max(0, last + 1 - lines):last + 1]


out = []
if spec["units"]:
    deadline = time.monotonic() + 5
    found = journal()
    while not any(ENDS.search(line) for line in found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = journal()
    out = last_failure(found)
for path in spec["files"]:
    try:
        with open(path, errors="replace") as f:
            out += f.read().splitlines()[-lines:]
    except OSError:
        pass
secrets = []
try:
    with open(spec["env_file"], encoding="utf-8", errors="replace") as f:
        for line in f.read().split("\n"):
            name, sep, value = line.partition("=")
            if sep and name and not name.startswith("#") and len(value) >= 4:
                secrets.append(value)
except OSError:
    pass
for line in out[-2 * lines:]:
    for value in sorted(secrets, key=len, reverse=True):
        line = line.replace(value, "***")
    print(line)
