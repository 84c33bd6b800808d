"""Print the app's last log lines (why it did not start), its secrets masked.

Usage: app_log.py JSON with {"units": [...], "files": [...], "env_file": PATH, "lines": N,
"since": EPOCH or null}. The values of the app's env file (SECRET_KEY, database URLs...) are
replaced by *** wherever they appear: a traceback may quote a connection string.
"""
import json
import subprocess
import sys

spec = json.loads(sys.argv[1])
lines = int(spec["lines"])
out = []
if spec["units"]:
    argv = ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines)]
    if spec.get("since"):
        argv += ["--since", "@%d" % int(spec["since"])]
    for unit in spec["units"]:
        argv += ["-u", unit]
    try:
        out += subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, errors="replace", timeout=20).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        pass
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
for line in out[-lines:]:
    for value in sorted(secrets, key=len, reverse=True):
        line = line.replace(value, "***")
    print(line)
