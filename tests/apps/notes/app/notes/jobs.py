"""A job worker as RQ and Celery run one: each job in a child process of its own; on SIGTERM
(a warm shutdown) the worker takes no new job and waits for the one in hand. jobs.log gets
"started N" and "done N" for each job, so a job killed mid-way shows as started only."""

import os
import signal
import sys
import time

log = os.path.join(os.path.dirname(os.environ["NOTES_DB"]), "jobs.log")
stopping = False


def note(text):
    with open(log, "a") as f:
        f.write(text + "\n")


def stop(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
job = 0
while not stopping:
    job += 1
    name = f"{os.getpid()}-{job}"
    child = os.fork()
    if child == 0:  # the job: default signal handling, as RQ's work horse has
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        note(f"started {name}")
        time.sleep(1.5)
        note(f"done {name}")
        os._exit(0)
    while True:
        try:
            os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
sys.exit(0)
