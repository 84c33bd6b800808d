"""A background worker: every half second it writes which release it runs and when."""

import os
import sys
import time

name = sys.argv[1] if len(sys.argv) > 1 else "worker"
path = os.path.join(os.path.dirname(os.environ["NOTES_DB"]), f"heartbeat-{name}")
print(f"worker {name} started in {os.getcwd()}", flush=True)
while True:
    with open(path + ".new", "w") as f:
        f.write(f"{os.environ.get('FLASK_OPS_RELEASE')} {time.time()}\n")
    os.replace(path + ".new", path)
    time.sleep(0.5)
