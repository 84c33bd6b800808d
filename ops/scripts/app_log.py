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

# What ends a failed start's output: the journal may not have it yet when we ask (journald
# reads the dying process's output asynchronously), so we wait for it, briefly.
ENDINGS = re.compile(r"Traceback|Error|GAME OVER|no app loaded|failed|exited|Killed|killed")

spec = json.loads(sys.argv[1])
lines = int(spec["lines"])


def journal():
    argv = ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines)]
    if spec.get("since"):
        argv += ["--since", "@%d" % int(spec["since"])]
    for unit in spec["units"]:
        argv += ["-u", unit]
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, errors="replace", timeout=20).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return []


out = []
if spec["units"]:
    deadline = time.monotonic() + 5
    out = journal()
    while not any(ENDINGS.search(line) for line in out[-5:]) and time.monotonic() < deadline:
        time.sleep(0.2)
        out = journal()
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
