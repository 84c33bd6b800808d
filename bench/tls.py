"""The cost of HTTPS on the rendered nginx config, measured with h2load (bounded in time and
requests): the same static file from the same host, once from a plain-HTTP site and once from
a TLS site with a certificate from the staging ACME server (Pebble).

    .venv/bin/python bench/tls.py [--seconds 3] [--reps 3]

- keep-alive requests/s over TLS vs. plain HTTP (8 connections reused: the cost of the cipher);
- 400 new connections at once, one request each, over TLS vs. plain HTTP (the cost of a full
  handshake: ECDHE + the certificate's signature; session tickets are off, no resumption).
"""

import argparse
import re
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
from ops.staging import pebble  # noqa: E402
from serve import fmt, median_of  # noqa: E402

PATH = "/static/css/site.css"


def h2load(url, address, port, args, timeout):
    """Requests per second from one bounded h2load run; exits on any failed request."""
    argv = ["h2load", "--h1", "-t2", f"--connect-to={address}:{port}", *args, url]
    out = subprocess.run(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=timeout)
    rate = re.search(r"finished in [0-9.]+m?s, ([0-9.]+) req/s", out.stdout)
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed",
                     out.stdout)
    if not rate or not done or int(done.group(3)) or int(done.group(2)) == 0:
        raise SystemExit(f"h2load failed for {url}:\n{out.stdout[-2000:]}")
    return float(rate.group(1))


def keep_alive(url, address, port, seconds):
    """8 connections, each reused for its share of a fixed request count."""
    return h2load(url, address, port, ["-c8", f"-n{5000 * seconds}"], seconds * 20 + 30)


def new_connections(url, address, port, seconds):
    """400 connections at once, one request each: as many full handshakes as requests."""
    return h2load(url, address, port, ["-c400", "-n400"], seconds * 20 + 30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    staging.up(1, log=lambda m: None)
    acme = pebble.up()
    host = staging.remote("staging1")
    tmp = Path(tempfile.mkdtemp())
    plain = make_project(tmp / "plain", config={"app_name": "plainbench",
                                                 "server_names": ["plain.bench.test"]})
    secure = make_project(tmp / "secure", config={"app_name": "tlsbench",
                                                   "server_names": ["tls.bench.test"],
                                                   "tls": acme.settings()})
    for s in (plain, secure):
        provision.provision(s, host)
        deploy.deploy(s, host, out=lambda m: None)
    a = host.address
    http_url, https_url = f"http://plain.bench.test{PATH}", f"https://tls.bench.test{PATH}"
    rows = [
        ("keep-alive requests/s: HTTPS vs. HTTP",
         median_of(args.reps, lambda: keep_alive(https_url, a, 443, args.seconds)),
         median_of(args.reps, lambda: keep_alive(http_url, a, 80, args.seconds))),
        ("new connection per request/s (full TLS handshake) vs. HTTP",
         median_of(args.reps, lambda: new_connections(https_url, a, 443, args.seconds)),
         median_of(args.reps, lambda: new_connections(http_url, a, 80, args.seconds))),
    ]
    out = [f"### The cost of HTTPS ({time.strftime('%Y-%m-%d')}, nginx default shape, a static "
           f"file, h2load --h1 from this machine (its CPU is shared with the staging host), "
           f"{args.reps} repetitions; ECDSA P-256 certificate from Pebble, TLS 1.3)", "",
           "| measurement | HTTPS (min/median/max) | HTTP | HTTPS/HTTP |", "| --- | --- | --- | --- |"]
    ratios = {}
    for label, tls_v, plain_v in rows:
        ratio = tls_v[0] / plain_v[0]
        ratios[f"HTTPS/HTTP: {label.split(':')[0].split(' (')[0]}"] = ratio
        out.append(f"| {label} | {fmt(tls_v)} | {fmt(plain_v)} | {ratio:.2f}x |")
    report = "\n".join(out) + "\n"
    print(report)
    return report, ratios


if __name__ == "__main__":
    main()
