"""``python -m bench``: alternating rounds of the three methods on one file, a table and a JSON file.

Ratios are speed-ups of ours: the other method's wall seconds divided by ours, per round; the
medians over rounds are ``ratio_vs_blog`` and ``ratio_vs_pandas``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone

import psutil
from distributed import LocalCluster

from bench import blog, data, fast_pandas, limits, ours
from bench.measure import PeakRSS

METHODS = {"blog": blog.run, "pandas": fast_pandas.run, "ours": ours.run}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")
MiB = 2**20


def timed(name: str, path: str, scheduler: str | None) -> dict:
    """One run of one method: its result, total wall seconds and peak memory."""
    with PeakRSS() as rss:
        start = time.perf_counter()
        result = METHODS[name](path) if name == "pandas" else METHODS[name](path, scheduler=scheduler)
        total = result.pop("wall", None) or time.perf_counter() - start  # a method's own, if it checks after
    return {**result, "total": round(total, 3), "stages": {k: round(v, 3) for k, v in result["stages"].items()},
            "questions_per_s": round(result["questions"] / total, 1),
            "peak_rss_tree_mib": round(rss.tree / MiB, 1), "peak_rss_child_mib": round(rss.child / MiB, 1)}


def ranked(counts: dict, top: int) -> list[list]:
    return [[k, v] for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def agreement(results: dict[str, dict], tolerance: float) -> dict:
    """Same question count and co-occurrence counts for every method; accuracies within ``tolerance`` of ours."""
    first = next(iter(results.values()))
    checks = {
        "questions_equal": len({r["questions"] for r in results.values()}) == 1,
        "cooccurrence_equal": all(r["cooccurrence"] == first["cooccurrence"] for r in results.values()),
        "accuracies": {name: round(r["accuracy"], 4) for name, r in results.items()},
    }
    if "ours" in results:
        mine = results["ours"]
        checks["report_top_equals_counts"] = mine["report_top"] == ranked(mine["cooccurrence"], len(mine["report_top"]))
        checks[f"accuracy_within_{tolerance}"] = all(abs(r["accuracy"] - mine["accuracy"]) <= tolerance for r in results.values())
    checks["ok"] = all(v for k, v in checks.items() if k != "accuracies")
    return checks


def summary(rounds: list[dict], name: str) -> dict:
    runs = [r[name] for r in rounds]
    median = lambda values: round(statistics.median(values), 3)  # noqa: E731
    return {
        "total": median([r["total"] for r in runs]),
        "stages": {s: median([r["stages"].get(s, 0.0) for r in runs]) for s in runs[0]["stages"]},
        "questions_per_s": median([r["questions_per_s"] for r in runs]),
        "peak_rss_tree_mib": max(r["peak_rss_tree_mib"] for r in runs),
        "peak_rss_child_mib": max(r["peak_rss_child_mib"] for r in runs),
    }


def machine() -> dict:
    from threadpoolctl import threadpool_info

    return {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "blas": [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for i in threadpool_info()],
    }


def table(report: dict) -> str:
    lines = [f"Posts.xml {report['size']} ({report['rows']} rows, {report['questions']} questions), "
             f"{report['rounds']} round(s), medians; ratio = their seconds / ours"]
    for name, s in report["summary"].items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in s["stages"].items())
        lines.append(f"  {name:<7} total {s['total']:7.1f} s  {s['questions_per_s']:9.0f} questions/s  "
                     f"peak RSS tree {s['peak_rss_tree_mib']:7.0f} MiB (largest child {s['peak_rss_child_mib']:.0f})"
                     f"\n          {stages}")
    for key in ("ratio_vs_blog", "ratio_vs_pandas"):
        if key in report:
            lines.append(f"  {key}: median {report[key]:.2f}  rounds {report['ratios'][key]}")
    if "blog_as_written" in report:
        lines.append(f"  blog as written (lazy, once): {report['blog_as_written']['total']:.1f} s")
    if "limits" in report:
        lines.append(f"  limits per core: {report['limits']['rates']}")
        lines.append(f"  seconds at the limits on {report['limits']['cores']} cores: {report['limits']['seconds']}"
                     f"  → ours / limit sum = {report['limits']['ours_over_limit_sum']:.2f}"
                     f" ({report['limits']['ours_over_limit_sum_with_vectorised_hash']:.2f} with our hashing as the limit)")
    lines.append(f"  agreement: {report['agreement']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", default="200MB", help="generated Posts.xml size (default 200MB)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the methods")
    parser.add_argument("--methods", default="blog,pandas,ours", help="comma-separated subset of blog,pandas,ours")
    parser.add_argument("--as-written", action="store_true", help="also run the blog's lazy, unpersisted method once")
    parser.add_argument("--no-limits", action="store_true", help="skip the per-stage limit measurements")
    parser.add_argument("--accuracy-tolerance", type=float, default=0.01,
                        help="largest accuracy difference from ours that counts as agreeing (default 0.01)")
    parser.add_argument("--shared-cluster", action="store_true",
                        help="one LocalCluster for the blog's method and ours instead of one per run (quick checks only:"
                             " cluster start is then left out of their times)")
    parser.add_argument("--data-dir", default=data.DEFAULT_DIR, help="where generated inputs are cached")
    parser.add_argument("--output", default=RESULTS, help="the JSON results file")
    args = parser.parse_args(argv)
    names = args.methods.split(",")
    path = data.ensure(args.size, args.seed, args.data_dir)
    report = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "size": args.size, "file": path, "bytes": os.path.getsize(path), "rounds": args.rounds, "per_round": []}
    with ExitStack() as stack:
        scheduler = None
        if args.shared_cluster:
            scheduler = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")).scheduler_address
        report["shared_cluster"] = args.shared_cluster
        run_rounds(report, names, path, args.rounds, args.accuracy_tolerance, scheduler)
        if args.as_written:
            report["blog_as_written"] = timed_lazy(path, scheduler)
    finish(report, names, path, args.no_limits)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(table(report))
    print(f"results: {args.output}")
    return 0 if report["agreement"]["ok"] else 1


def run_rounds(report: dict, names: list[str], path: str, rounds: int, tolerance: float, scheduler: str | None) -> None:
    for i in range(rounds):
        order = names[i % len(names):] + names[: i % len(names)]  # alternate who goes first
        results = {}
        for name in order:
            gc.collect()  # no method pays for collecting the one before it
            results[name] = timed(name, path, scheduler)
            print(f"round {i + 1}: {name} {results[name]['total']:.1f} s", file=sys.stderr, flush=True)
        report["per_round"].append({"order": order, "agreement": agreement(results, tolerance),
                                    **{n: {k: v for k, v in r.items() if k not in ("cooccurrence", "report_top")}
                                       for n, r in results.items()}})


def finish(report: dict, names: list[str], path: str, no_limits: bool) -> None:
    """Medians, agreement over all rounds, ratios and the limits, added to ``report``."""
    rounds = report["per_round"]
    report["summary"] = {name: summary(rounds, name) for name in names}
    report["agreement"] = {"ok": all(r["agreement"]["ok"] for r in rounds),
                           "accuracies": [r["agreement"]["accuracies"] for r in rounds]}
    report["questions"] = rounds[0][names[0]]["questions"]
    report["rows"] = rounds[0]["ours"]["rows"] if "ours" in names else None
    if "ours" in names:
        report["ratios"] = {}
        for other in ("blog", "pandas"):
            if other in names:
                ratios = [round(r[other]["total"] / r["ours"]["total"], 3) for r in rounds]
                report["ratios"][f"ratio_vs_{other}"] = ratios
                report[f"ratio_vs_{other}"] = round(statistics.median(ratios), 3)
    if not no_limits and "ours" in names:
        rates = limits.measure(path)
        ours_run = rounds[0]["ours"]
        seconds = limits.seconds(rates, report["bytes"], ours_run["rows"], ours_run["questions"], ours_run["labelled"], 2)
        ours_total = report["summary"]["ours"]["total"]
        report["limits"] = {"rates": rates, "cores": 2, "seconds": seconds,
                            "ours_over_limit_sum": round(ours_total / seconds["sum"], 2),
                            "ours_over_limit_sum_with_vectorised_hash": round(
                                ours_total / seconds["sum_with_vectorised_hash"], 2)}


def timed_lazy(path: str, scheduler: str | None) -> dict:
    """The blog's method as written (nothing persisted), once: for scale, not in the ratios."""
    with PeakRSS() as rss:
        start = time.perf_counter()
        result = blog.run(path, persist=False, scheduler=scheduler)
        total = time.perf_counter() - start
    return {"total": round(total, 3), "stages": {k: round(v, 3) for k, v in result["stages"].items()},
            "questions": result["questions"], "accuracy": result["accuracy"],
            "peak_rss_tree_mib": round(rss.tree / MiB, 1)}


if __name__ == "__main__":
    sys.exit(main())
