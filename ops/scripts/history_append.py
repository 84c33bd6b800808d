"""Append one entry to the app's deploy history (one JSON object per line, newest last).

Arguments: HISTORY_FILE ENTRY_JSON. The host adds "at" (its clock) and "seconds" (since the
entry's "started", also the host's clock). The file lives outside the releases, so pruning
never removes it; it keeps the last 1000 entries.
"""
import json
import os
import sys
import time

KEEP = 1000


def main(path, entry_json):
    entry = json.loads(entry_json)
    now = time.time()
    entry["at"] = now
    if entry.get("started"):
        entry["seconds"] = round(now - entry["started"], 2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    if len(lines) > KEEP + 100:  # trimmed now and then, not at every write
        with open(path + ".new", "w", encoding="utf-8") as f:
            f.writelines(lines[-KEEP:])
        os.replace(path + ".new", path)


if __name__ == "__main__":
    main(*sys.argv[1:])
