"""`make bench`: every benchmark in one run, written to docs/benchmarks.md with a plot:
ours vs. the peers, the fleet curve, our own speed, what the configs serve, Apache's static
profile, the cost of HTTPS, zero downtime.

Sections are the scripts' own reports; the plot shows the ratios (ours vs. the alternative).
"""

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import apache_static  # noqa: E402
import deploy_vs_peers  # noqa: E402
import fleet  # noqa: E402
import own_speed  # noqa: E402
import serve  # noqa: E402
import ssh_transport  # noqa: E402
import tls as tls_bench  # noqa: E402
import zero_downtime  # noqa: E402


def plot(ratios, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, values = list(ratios), list(ratios.values())
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(names) + 1.5))
    ax.barh(names, values, color="#4c72b0")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.1f}x", va="center")
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.set_xscale("log")  # 1x to 60x on one axis
    ax.set_xlabel("ratio (higher: flask-ops / its configs ahead)")
    ax.set_title(f"flask-ops benchmarks, {time.strftime('%Y-%m-%d')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_fleet(runs, path):
    """The fleet curve: seconds against app hosts, one line per tool, code change and no-op."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, scenario in zip(axes, fleet.SCENARIOS):
        tools = sorted({k.split("|")[0] for k in runs})
        for tool in tools:
            points = sorted((int(k.split("|")[1]), v[0]) for k, v in runs.items()
                            if k.startswith(tool + "|") and k.endswith("|" + scenario))
            ax.plot([n for n, _ in points], [s for _, s in points], marker="o", label=tool)
        ax.set_xlabel("app hosts")
        ax.set_ylabel("seconds (whole tool process)")
        ax.set_xticks(sorted({int(k.split("|")[1]) for k in runs}))
        ax.set_yscale("log")
        ax.set_title(scenario)
    axes[0].legend()
    fig.suptitle(f"deploy time as the fleet grows, {time.strftime('%Y-%m-%d')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    memory = subprocess.getoutput("free -g | awk '/Mem/ {print $2}'")
    machine = (f"{platform.machine()}, {subprocess.getoutput('nproc')} cores, {memory} GiB, "
               f"Python {platform.python_version()}, targets: systemd-nspawn staging hosts here")
    speed = deploy_vs_peers.main([])
    fleet_report = fleet.main([])
    own = own_speed.main([])
    transport = ssh_transport.main([])
    served, ratios = serve.main()
    apache_report, _ = apache_static.main([])
    tls_report, tls_ratios = tls_bench.main()
    zdt_report = zero_downtime.main([])
    ratios.update(tls_ratios)
    runs = json.loads((ROOT / "build/deploy_vs_peers.json").read_text())
    for key in runs:
        tool, scenario = key.split("|")
        if tool != "flask-ops":
            ratios[f"{tool} / flask-ops: {scenario}"] = (
                statistics.median(r[0] for r in runs[key])
                / statistics.median(r[0] for r in runs[f"flask-ops|{scenario}"]))
    plot(ratios, ROOT / "docs/benchmarks.png")
    plot_fleet(json.loads((ROOT / "build/fleet.json").read_text()), ROOT / "docs/fleet.png")
    doc = ROOT / "docs/benchmarks.md"
    text = doc.read_text()
    marker = "<!-- make bench: generated below -->"
    text = text.split(marker)[0].rstrip() + f"\n\n{marker}\n\n## `make bench` ({machine})\n\n" \
        f"Reproduce: `make bench`.\n\n{speed}\n{fleet_report}\n{own}\n{transport}\n{served}\n" \
        f"{apache_report}\n{tls_report}\n{zdt_report}\n![ratios](benchmarks.png)\n\n" \
        "![the fleet curve](fleet.png)\n"
    doc.write_text(text)
    print(f"wrote {doc}, docs/benchmarks.png and docs/fleet.png")


if __name__ == "__main__":
    main()
