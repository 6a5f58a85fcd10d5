"""Charts of a scripts/load run (matplotlib; deploy/load/chart.sh makes its venv).

    python chart.py DIR OUT.png

DIR of a full or ci run (summary.json and samples.csv from report.js/processor.js):
request rate (1 s bins) above, p50/p95/p99 response time (5 s bins, log scale) below,
non-2xx responses as red marks, the phases as they actually ran shaded, the targets as
dotted lines.

DIR of a stress run (stages.jsonl): p50/p95/p99 and achieved request rate per stage's
arrival rate, the knee marked.
"""

import json
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def quantile(values, q):
    """Nearest rank, as report.js."""
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def timeline(directory, out):
    with open(os.path.join(directory, "summary.json")) as f:
        summary = json.load(f)
    phases = summary["phases"]
    t0 = phases[0]["start"]
    per_second = defaultdict(int)
    bins = defaultdict(list)
    failed = defaultdict(int)
    with open(os.path.join(directory, "samples.csv")) as f:
        for line in f:
            at, first_byte, _total, status, _name = line.rstrip("\n").split(",", 4)
            t = (int(at) - t0) / 1000
            per_second[int(t // 1)] += 1
            if first_byte:
                bins[int(t // 5)].append(float(first_byte))
            if not 200 <= int(status) < 300:
                failed[int(t // 5)] += 1

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for i, phase in enumerate(p for p in phases if p["name"] != "tail"):
        a, b = (phase["start"] - t0) / 1000, (phase["end"] - t0) / 1000
        for ax in (top, bottom):
            ax.axvspan(a, b, color="0.93" if i % 2 else "0.85", lw=0)
        top.text((a + b) / 2, 1.01 + 0.06 * (i % 2), f"{phase['name']} ({phase['offered']} VU/s)",
                 ha="center", va="bottom", fontsize=7.5, transform=top.get_xaxis_transform())

    xs = sorted(per_second)
    top.plot(xs, [per_second[x] for x in xs], lw=0.8, label="responses per second")
    top.axhline(100, color="tab:green", lw=0.9, ls=":", label="target: > 100 requests/s")
    top.set_ylabel("requests/s")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)

    ks = sorted(bins)
    centers = [k * 5 + 2.5 for k in ks]
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        bottom.plot(centers, [quantile(bins[k], q) for k in ks], marker="o", ms=2.5, lw=1,
                    label=f"{label} (5 s bins)")
    bottom.axhline(3000, color="tab:red", lw=0.9, ls=":", label="target: p99 < 3 s")
    bad = sorted(failed)
    if bad:
        floor = max(1, min(quantile(bins[k], 0.5) or 1 for k in ks) / 2)
        bottom.scatter([k * 5 + 2.5 for k in bad], [floor] * len(bad), color="red", marker="x",
                       s=18, label="non-2xx responses (count)", zorder=5)
        for k in bad:
            bottom.annotate(str(failed[k]), (k * 5 + 2.5, floor), textcoords="offset points",
                            xytext=(0, 4), fontsize=6.5, color="red", ha="center")
    bottom.set_yscale("log")
    bottom.set_ylabel("response time, ms (to first byte)")
    bottom.set_xlabel("seconds since the first phase started")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3, which="both")
    return fig


def stress(directory, out):
    rows = []
    with open(os.path.join(directory, "stages.jsonl")) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    rows = [r for r in rows if not r.get("noReport")]
    rates = [r["rate"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(rates, [r["meanRate"] for r in rows], marker="o", label="requests/s achieved")
    top.axhline(100, color="tab:green", lw=0.9, ls=":", label="target: > 100 requests/s")
    top.set_ylabel("requests/s")
    top.grid(alpha=0.3)
    err = top.twinx()
    err.plot(rates, [r["errorPct"] for r in rows], color="tab:red", marker="x", lw=0.8,
             label="error rate, %")
    err.axhline(5, color="tab:red", lw=0.8, ls=":")
    err.set_ylabel("errors, % of requests", color="tab:red")
    lines = top.get_legend_handles_labels()
    more = err.get_legend_handles_labels()
    top.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    for key in ("p50", "p95", "p99"):
        bottom.plot(rates, [r[key] for r in rows], marker="o", label=key)
    bottom.axhline(3000, color="tab:red", lw=0.9, ls=":", label="target: p99 < 3 s")
    passed = [r["rate"] for r in rows if r["allMet"]]
    if passed:
        knee = max(passed)
        for ax in (top, bottom):
            ax.axvline(knee, color="k", lw=0.9, ls="--")
        bottom.annotate(f"knee: {knee} VU/s", (knee, 3000), textcoords="offset points",
                        xytext=(4, 8), fontsize=8)
    bottom.set_yscale("log")
    bottom.set_ylabel("response time, ms")
    bottom.set_xlabel("arrival rate, virtual users/s (one stage each)")
    bottom.legend(loc="lower right", fontsize=8)
    bottom.grid(alpha=0.3, which="both")
    return fig


def main():
    directory, out = sys.argv[1], sys.argv[2]
    if os.path.exists(os.path.join(directory, "stages.jsonl")):
        fig = stress(directory, out)
        default = "Aurora stress test"
    else:
        fig = timeline(directory, out)
        default = "Aurora load test"
    fig.suptitle(os.environ.get("AURORA_LOAD_CHART_TITLE") or default, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"chart: {out}")


if __name__ == "__main__":
    main()
