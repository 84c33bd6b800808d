"""`make bench`: every benchmark in one run, written to docs/benchmarks.md with a plot.

Sections are the scripts' own reports; the plot shows the ratios (ours vs. the alternative).
"""

import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import deploy_vs_ansible  # noqa: E402
import serve  # noqa: E402
import tls as tls_bench  # noqa: E402
import zero_downtime  # noqa: E402


def plot(ratios, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, values = list(ratios), list(ratios.values())
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) + 1.5))
    ax.barh(names, values, color="#4c72b0")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.1f}x", va="center")
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.set_xscale("log")  # 1x to 60x on one axis
    ax.set_xlabel("ratio (higher: flask-ops / its configs ahead)")
    ax.set_title(f"flask-ops benchmarks, {time.strftime('%Y-%m-%d')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    memory = subprocess.getoutput("free -g | awk '/Mem/ {print $2}'")
    machine = (f"{platform.machine()}, {subprocess.getoutput('nproc')} cores, {memory} GiB, "
               f"Python {platform.python_version()}, targets: systemd-nspawn staging hosts here")
    speed = deploy_vs_ansible.main()
    served, ratios = serve.main()
    tls_report, tls_ratios = tls_bench.main()
    zdt_report = zero_downtime.main([])
    ratios.update(tls_ratios)
    import json
    runs = json.loads((ROOT / "build/deploy_vs_ansible.json").read_text())
    import statistics
    for scenario in deploy_vs_ansible.SCENARIOS:
        ours = statistics.median(t for t, _ in runs[f"flask-ops|{scenario}"])
        theirs = statistics.median(t for t, _ in runs[f"ansible|{scenario}"])
        ratios[f"deploy speed vs Ansible: {scenario}"] = theirs / ours
    plot(ratios, ROOT / "docs/benchmarks.png")
    notes = []
    if "Apache + mod_wsgi | static file" in served and "MISSED" in served.split("Apache + mod_wsgi | static file")[1].split("\n")[0]:
        notes.append(
            "- Apache's static files miss the 10x target: Apache serves this small file at "
            "well under half nginx's rate on the same host (a heavier per-request path: "
            "per-request access logging, mod_headers, the MPM's worker hand-off), while the "
            "Flask baseline is the same for both stacks; nginx meets the target.")
    for scenario in deploy_vs_ansible.SCENARIOS:
        if ratios[f"deploy speed vs Ansible: {scenario}"] < 5 and scenario != "first deploy":
            notes.append(f"- {scenario}: below the 5x target in this run.")
    notes.append("- The first deploy has no target: both tools spend most of it building the "
                 "venv on the host; ours also runs the full smoke checks (about 1.5 s of "
                 "streaming), the playbook only checks /healthz.")
    served += "\nNotes:\n\n" + "\n".join(notes) + "\n"
    doc = ROOT / "docs/benchmarks.md"
    text = doc.read_text()
    marker = "<!-- make bench: generated below -->"
    text = text.split(marker)[0].rstrip() + f"\n\n{marker}\n\n## `make bench` ({machine})\n\n" \
        f"Reproduce: `make bench`.\n\n{speed}\n{served}\n{tls_report}\n{zdt_report}\n" \
        "![ratios](benchmarks.png)\n"
    doc.write_text(text)
    print(f"wrote {doc} and docs/benchmarks.png")


if __name__ == "__main__":
    main()
