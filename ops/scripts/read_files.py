"""Print the content of each named file as one JSON object ({path: text or null})."""
import json
import sys

out = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            out[path] = f.read()
    except OSError:
        out[path] = None
print(json.dumps(out))
