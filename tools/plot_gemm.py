#!/usr/bin/env python3
"""GEMM GFLOP/s per kernel version, as a PNG bar chart, from bench_cuda_gemm's JSON output.

    python3 tools/plot_gemm.py results/gpu/bench_cuda_gemm.json results/gpu/gemm.png
    python3 tools/plot_gemm.py IN.json OUT.png --shape B=1,M=1024,N=1024,K=1024,layout=0

tools/gpu_check writes the JSON (Google Benchmark's --benchmark_out format). One bar per
version of kernels/cuda/gemm.cu on one shape (4096^3 NN by default), labelled with its GFLOP/s
and its percentage of cuBLAS fp32 on the same run; the cuBLAS bars are drawn in grey. Needs
matplotlib (Debian: apt-get install python3-matplotlib, then run it with /usr/bin/python3).
"""
import argparse
import json
import re
import sys

DEFAULT_SHAPE = "B=1,M=4096,N=4096,K=4096,layout=0"
NAME = re.compile(r"^gemm/(?P<args>[^ ]*?)(?:/manual_time)?$")


def parse_args_of(name):
    """{'B': 1, 'M': 4096, ..., 'v': 6} from 'gemm/B:1/M:4096/.../v:6/manual_time', else None."""
    m = NAME.match(name)
    if not m:
        return None
    out = {}
    for part in m.group("args").split("/"):
        key, sep, value = part.partition(":")
        if not sep or not value.lstrip("-").isdigit():
            return None
        out[key] = int(value)
    return out


def bars_for(runs, shape):
    """(label, GFLOP/s, vs_ref) per version of the wanted shape, in version order."""
    rows = []
    for run in runs:
        args = parse_args_of(run.get("name", ""))
        if args is None or "v" not in args or "error_occurred" in run and run["error_occurred"]:
            continue
        if any(args.get(k) != v for k, v in shape.items()):
            continue
        if "GFLOP/s" not in run:
            continue
        rows.append((args["v"], run.get("label") or f"v{args['v']}", run["GFLOP/s"],
                     run.get("vs_ref", 0.0)))
    rows.sort()
    return [(label, gflops, vs_ref) for _, label, gflops, vs_ref in rows]


def parse_shape(text):
    shape = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not value.isdigit():
            sys.exit(f"plot_gemm: --shape wants KEY=INT pairs like {DEFAULT_SHAPE}, got '{text}'")
        shape[key] = int(value)
    return shape


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", help="bench_cuda_gemm --benchmark_out file")
    p.add_argument("png", help="where to write the chart")
    p.add_argument("--shape", default=DEFAULT_SHAPE, help=f"which run (default {DEFAULT_SHAPE})")
    a = p.parse_args()
    try:
        with open(a.json) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_gemm: cannot read {a.json}: {e}")
    shape = parse_shape(a.shape)
    bars = bars_for(data.get("benchmarks", []), shape)
    if not bars:
        sys.exit(f"plot_gemm: {a.json} has no successful gemm run of shape {a.shape}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_gemm: needs matplotlib (apt-get install python3-matplotlib; "
                 "run with /usr/bin/python3)")

    labels = [label for label, _, _ in bars]
    values = [gflops for _, gflops, _ in bars]
    colors = ["0.6" if label.startswith("cublas") else "tab:blue" for label in labels]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.4))
    ax.barh(range(len(bars)), values, color=colors)
    ax.set_yticks(range(len(bars)), labels)
    ax.invert_yaxis()  # version 0 on top, the progression downwards
    for i, (label, gflops, vs_ref) in enumerate(bars):
        note = f"{gflops:,.0f}" + ("" if label.startswith("cublas") else f"  ({100 * vs_ref:.0f}%)")
        ax.text(gflops, i, " " + note, va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.25)
    ax.set_xlabel("GFLOP/s (in brackets: % of its cuBLAS reference on the same run, TF32 for TF32)")
    context = data.get("context", {})
    title = f"SGEMM {a.shape.replace(',', ' ')}"
    if context.get("date"):
        title += f" - {context['date'][:10]}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)
    print(f"plot_gemm: wrote {a.png} ({len(bars)} versions)")


if __name__ == "__main__":
    main()
