"""What the generated configs serve, measured with wrk (bounded: fixed duration, few connections).

    .venv/bin/python bench/serve.py [--seconds 3] [--reps 3]

On staging1 (nginx + uWSGI, `cache` shape) and staging2 (Apache + mod_wsgi):
- a cached GET (HIT) vs. the same GET uncached through nginx + uWSGI (target >= 5x);
- a static file through the front server vs. through Flask (target >= 10x);
- a dynamic GET through the front server vs. uWSGI's own HTTP server (the tier's overhead);
- streaming: delay between the app yielding a line and the client reading it (target <= 0.1 s).
"""

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_project  # noqa: E402
from ops import staging  # noqa: E402
from ops.deploy import deploy, provision  # noqa: E402

DIRECT_PORT = 9090
RUN = "/run/flask-ops-bench"


def wrk(address, port, path, seconds, headers=()):
    """Requests per second from one bounded wrk run."""
    argv = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--timeout", "5s"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(argv + [f"http://{address}:{port}{path}"], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=seconds + 30)
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out.stdout)
    if not match or "Non-2xx" in out.stdout:
        raise SystemExit(f"wrk failed for {path}:\n{out.stdout}")
    return float(match.group(1))


def stream_delays(address, port, host, count=10, delay=0.2):
    """Seconds between each line's yield (its timestamp) and its arrival here."""
    conn = http.client.HTTPConnection(address, port, timeout=30)
    conn.request("GET", f"/time?count={count}&delay={delay}", headers={"Host": host})
    resp, delays, buffer = conn.getresponse(), [], b""
    while True:
        piece = resp.read1(65536)
        if not piece:
            break
        now = time.time()
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        delays += [now - float(line.split()[1]) for line in lines if line]
    conn.close()
    return delays


def direct_uwsgi(host, s):
    """uWSGI's own HTTP server on the app's current release, as the app user, bounded."""
    host.run(f"install -d -o {s.app_user} -m 755 {RUN} && rm -f {RUN}/* && "
             f"cd {s.current} && timeout 600 /usr/bin/uwsgi --plugins python3,http "
             f"--http {host.address}:{DIRECT_PORT} --chdir {s.current} --virtualenv {s.current}/venv "
             f"--module {s.wsgi} --master --processes {s.processes} --uid {s.app_user} "
             f"--gid {s.app_group} --need-app --daemonize2 {RUN}/uwsgi.log "
             f"--pidfile2 {RUN}/uwsgi.pid", "direct uwsgi")
    staging.wait_until(lambda: answers(host.address, DIRECT_PORT), 20, "uWSGI's HTTP server")


def answers(address, port, path="/hello", host=None):
    """Whether a GET answers 200 now (a probe for wait_until)."""
    try:
        conn = http.client.HTTPConnection(address, port, timeout=1)
        conn.request("GET", path, headers={"Host": host} if host else {})
        return conn.getresponse().status == 200
    except OSError:
        return False


def median_of(reps, fn):
    values = [fn() for _ in range(reps)]
    return statistics.median(values), min(values), max(values)


def fmt(v):
    return f"{v[1]:.0f} / {v[0]:.0f} / {v[2]:.0f}"


def measure(s, host, seconds, reps, cache):
    a, p, h = host.address, s.listen_port, f"Host: {s.server_names[0]}"
    direct_uwsgi(host, s)
    try:
        rows = []
        if cache:
            wrk(a, p, "/hello", 1, [h])  # warm the cache
            hit = median_of(reps, lambda: wrk(a, p, "/hello", seconds, [h]))
            miss = median_of(reps, lambda: wrk(a, p, "/hello", seconds, [h, "Cookie: session=x"]))
            rows.append(("cached GET (HIT) vs. uncached through nginx + uWSGI", hit, miss, 5))
        static = median_of(reps, lambda: wrk(a, p, "/static/css/site.css", seconds, [h]))
        flask_static = median_of(reps, lambda: wrk(a, DIRECT_PORT, "/static/css/site.css", seconds))
        rows.append(("static file: front server vs. Flask", static, flask_static, 10))
        front = median_of(reps, lambda: wrk(a, p, "/hello", seconds, [h, "Cookie: session=x"]))
        direct = median_of(reps, lambda: wrk(a, DIRECT_PORT, "/hello", seconds))
        rows.append(("dynamic GET: front server vs. uWSGI's own HTTP", front, direct, None))
        delays = {"front server": stream_delays(a, p, s.server_names[0]),
                  "uWSGI direct": stream_delays(a, DIRECT_PORT, s.server_names[0])}
        return rows, delays
    finally:
        host.run(f"kill -INT $(cat {RUN}/uwsgi.pid) 2>/dev/null; rm -rf {RUN}", "stop", check=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    staging.up(2, log=lambda m: None)
    tmp = Path(tempfile.mkdtemp())
    out = [f"### What the configs serve ({time.strftime('%Y-%m-%d')}, wrk -t2 -c8 "
           f"-d{args.seconds}s, {args.reps} repetitions)", "",
           "| stack | measurement | A req/s (min/median/max) | B req/s | A/B | target |",
           "| --- | --- | --- | --- | --- | --- |"]
    streams = ["", "| stack | path | max delay yield→client (s) | median (s) | target |",
               "| --- | --- | --- | --- | --- |"]
    ratios = {}
    for name, host_name, config, cache in [
            ("nginx + uWSGI (cache)", "staging1", {"nginx": "cache", "app_name": "serve",
                                                   "server_names": ["serve.test"]}, True),
            ("Apache + mod_wsgi", "staging2", {"stack": "apache-modwsgi"}, False)]:
        host = staging.remote(host_name)
        s = make_project(tmp / host_name, config=config)
        provision.provision(s, host)
        lock = deploy.status(s, host)["lock"]
        if "STALE" in lock:  # a benchmark's throwaway app: say so, clear it, measure
            print(f"warning: {host_name}: {lock}; clearing it", file=sys.stderr)
            deploy.unlock(s, host)
        deploy.deploy(s, host, out=lambda m: None)
        rows, delays = measure(s, host, args.seconds, args.reps, cache)
        for label, a, b, target in rows:
            ratio = a[0] / b[0]
            ratios[f"{name}: {label.split(':')[0]}"] = ratio
            verdict = "-" if target is None else (f">= {target}x: " + ("met" if ratio >= target else "MISSED"))
            out.append(f"| {name} | {label} | {fmt(a)} | {fmt(b)} | {ratio:.1f}x | {verdict} |")
        for path, values in delays.items():
            worst = max(values)
            streams.append(f"| {name} | {path} | {worst:.3f} | {statistics.median(values):.3f} | "
                           f"<= 0.1: {'met' if worst <= 0.1 else 'MISSED'} |")
    report = "\n".join(out + streams) + "\n"
    print(report)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build/serve_ratios.json").write_text(__import__("json").dumps(ratios))
    return report, ratios


if __name__ == "__main__":
    main()
