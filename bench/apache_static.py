"""Where Apache's time goes on a static file: the deployed site, then one change at a time.

    .venv/bin/python bench/apache_static.py [--seconds 3] [--reps 3]

On staging2 (Apache + mod_wsgi, the sample app), wrk fetches the same small static file
through Apache with each variant of the configuration (applied on the host, checked by
`apache2ctl -t`, the deployed site put back afterwards), against Flask's own static route
(uWSGI's HTTP server, the same baseline as bench/serve.py). Target: Apache >= 10x Flask.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import serve  # noqa: E402
from conftest import make_project  # noqa: E402
from ops import staging  # noqa: E402
from ops.deploy import deploy, provision  # noqa: E402

HOST = "staging2"
PATH = "/static/css/site.css"
DROPIN = "/etc/apache2/conf-enabled/zz-flask-ops-bench.conf"
# (label, global directives, sed expression applied to the site): each alone, then together
VARIANTS = [
    ("as deployed", "", ""),
    ("MaxKeepAliveRequests 0 (Debian: 100, then the connection closes)",
     "MaxKeepAliveRequests 0", ""),
    ("EnableSendfile On (Debian: Off)", "EnableSendfile On", ""),
    ("no access log", "", r"/CustomLog/d"),
    ("no mod_headers directives (the security headers and Cache-Control)", "",
     r"/^\s*Header /d"),
    ("no mod_unique_id request id", "", r"/X-Request-ID/d"),
    ("Options +FollowSymLinks (ours: -FollowSymLinks, one lstat per path part)", "",
     r"s/Options -Indexes -FollowSymLinks/Options -Indexes +FollowSymLinks/"),
    ("no maintenance RewriteCond (a stat of the flag file per request)", "", r"/Rewrite/d"),
]
CPU = ("awk '{t += $14 + $15} END {print t}' $(grep -l '^Name:\\s*%s$' /proc/[0-9]*/status "
       "2>/dev/null | sed 's/status$/stat/') 2>/dev/null; getconf CLK_TCK")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", type=int, default=len(VARIANTS),
                        help="only the first N configurations (make test's tiny run: 1)")
    args = parser.parse_args(argv)
    staging.up(2, log=lambda m: None)  # staging1: nginx for reference; staging2: Apache
    host = staging.remote(HOST)
    s = make_project(Path(tempfile.mkdtemp()), config={
        "stack": "apache-modwsgi", "app_name": "apstatic", "server_names": ["apstatic.test"]})
    provision.provision(s, host)
    deploy.deploy(s, host, out=lambda m: None)
    site = f"/etc/apache2/sites-available/{s.app_name}.conf"
    a, p, h = host.address, s.listen_port, f"Host: {s.server_names[0]}"

    def rate(port, headers, remote=host, comm="apache2"):
        """(median req/s, the server's CPU ms per 1000 requests): where the time goes on a
        machine whose two cores wrk shares with the server."""
        serve.wrk(remote.address, port, PATH, 1, headers)  # warm: workers spawned, files cached
        rates, cpu = [], []
        for _ in range(args.reps):
            before = _cpu(remote, comm)
            rates.append(serve.wrk(remote.address, port, PATH, args.seconds, headers))
            cpu.append((_cpu(remote, comm) - before) * 1e6 / (rates[-1] * args.seconds))
        return statistics.median(rates), statistics.median(cpu)

    def apply(directives, sed):
        host.run(f"cp {site} /tmp/site.bench && printf '%s\\n' {_q(directives)} > {DROPIN} && "
                 + (f"sed -i {_q(sed)} {site} && " if sed else "")
                 + "apache2ctl -t 2>&1 && systemctl reload apache2", "bench variant")
        staging.wait_until(lambda: serve.answers(a, p, PATH, s.server_names[0]), 20,
                           "Apache after the reload")

    def restore():
        host.run(f"rm -f {DROPIN}; test -f /tmp/site.bench && mv /tmp/site.bench {site}; "
                 "systemctl reload apache2", "bench restore", check=False)

    serve.direct_uwsgi(host, s)
    rows = []
    try:
        flask, flask_cpu = rate(serve.DIRECT_PORT, [], comm="uwsgi")
        everything = (" ; ".join(d for _, d, _ in VARIANTS if d),
                      " ; ".join(e for _, _, e in VARIANTS if e))
        chosen = VARIANTS[:args.variants]
        for label, directives, sed in chosen + ([("all of the above", *everything)]
                                                if len(chosen) == len(VARIANTS) else []):
            if label != "as deployed":
                apply(directives.replace(" ; ", "\n"), sed)
            try:
                rows.append((label, rate(p, [h])))
            finally:
                restore()
    finally:
        host.run(f"kill -INT $(cat {serve.RUN}/uwsgi.pid) 2>/dev/null; rm -rf {serve.RUN}",
                 "stop", check=False)
    nginx = _nginx_reference(args, rate)
    base = rows[0][1][0]
    lines = [f"### Apache static files, profiled ({time.strftime('%Y-%m-%d')}, wrk -t2 -c8 "
             f"-d{args.seconds}s, median of {args.reps})", "",
             f"`{PATH}` through Apache 2.4 + mod_wsgi (event MPM) on {HOST}; Flask's own static "
             f"route (uWSGI's HTTP server): {flask:.0f} req/s ({flask_cpu:.0f} ms of CPU per 1000 "
             "requests). Target: Apache >= 10x Flask. Each change alone, then all together; "
             "the server's CPU per request says where the time goes (wrk shares the two cores).",
             "", "| configuration | **vs. Flask** | vs. as deployed | req/s | server CPU ms / 1000 req |",
             "| --- | --- | --- | --- | --- |"]
    for label, (value, cpu) in rows:
        lines.append(f"| {label} | **{value / flask:.1f}x** | {value / base:.2f}x | {value:.0f} | "
                     f"{cpu:.0f} |")
    lines.append(f"| for reference: nginx, the same file on staging1 | "
                 f"**{nginx[0] / flask:.1f}x** | {nginx[0] / base:.2f}x | {nginx[0]:.0f} | "
                 f"{nginx[1]:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    return report, {label: value / flask for label, (value, _) in rows}


def _cpu(remote, comm):
    """CPU seconds the running processes named comm have used so far."""
    ticks, hz = remote.run(CPU % comm, "bench: cpu").stdout.split()
    return float(ticks) / float(hz)


def _nginx_reference(args, rate):
    """nginx on staging1 serving the same file (the sample app, its default shape)."""
    host = staging.remote("staging1")
    s = make_project(Path(tempfile.mkdtemp()), config={"app_name": "apref",
                                                        "server_names": ["apref.test"]})
    provision.provision(s, host)
    deploy.deploy(s, host, out=lambda m: None)
    return rate(80, ["Host: apref.test"], remote=host, comm="nginx")


def _q(text):
    return "'" + text.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    main()
