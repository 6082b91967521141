"""``python -m bench``: every method as a whole process, alternating rounds, one file, a table and a JSON file.

A method's time is what its user waits for: from exec to exit of ``posts-pipeline run`` or
``python -m bench.<method>``, imports, cluster or session start and shutdown included. Beside it
each method's own in-process figures (its stages; our report's ``total``). Ratios are speed-ups of
ours: the other's wall seconds divided by ours in the same round; ``ratios`` holds their medians.
Nothing is compared until every method's answers agree with ours (questions, every co-occurrence
count, accuracy within the tolerance).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import psutil
import pyarrow.parquet as pq

from bench import data, limits
from bench.measure import PeakRSS

# name → the module a method runs as (None: ours, the posts-pipeline command), and what it needs. ours-api is
# pipeline.run.run from Python with the fork server started before its clock (bench/ours.py): in-process.
METHODS = {"ours": None, "ours-api": "bench.ours", "polars": "bench.polars_job", "pandas": "bench.fast_pandas",
           "duckdb": "bench.duckdb_job",
           "blog": "bench.blog", "spark": "bench.spark_job"}
NEEDS = {"polars": ["polars"], "duckdb": ["duckdb"], "spark": ["pyspark"]}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")
MiB = 2**20
# Our CLI's log lines that end one phase of a run and open the next (imports: from exec to the first).
PHASES = [(r"input .* → output", "cluster start"), (r"pass 1:", "pass 1"),
          (r": classifier .* on \d+ questions", "classifier"), (r": accuracy \S+ on", "write results"),
          (r"results in ", "shutdown")]


def missing(name: str) -> str | None:
    """Why a method cannot run here, or None."""
    absent = [m for m in NEEDS.get(name, []) if importlib.util.find_spec(m) is None]
    if absent:
        return f"{', '.join(absent)} not installed in {sys.prefix} (make bench-env installs it)"
    if name == "spark" and shutil.which("java") is None:
        return "no java on PATH (PySpark needs Java 17: apt-get install openjdk-17-jre-headless)"
    return None


def command(name: str, path: str, workdir: str, tag: str, labels: list[str]) -> list[str]:
    if METHODS[name] is None:
        cli = os.path.join(os.path.dirname(sys.executable), "posts-pipeline")
        return [cli, "run", "--input", path, "--output", os.path.join(workdir, "run"), "--tag", tag,
                "--classifier-tags", *labels, "--no-progress"]
    return [sys.executable, "-m", METHODS[name], path, "--output", os.path.join(workdir, "result.json"),
            "--tag", tag, "--labels", *labels]


def answers_of_ours(run_dir: str, tag: str) -> dict:
    """Our answers from the run directory: the report, and every co-occurrence count from questions/."""
    with open(os.path.join(run_dir, "report.json")) as f:
        report = json.load(f)
    tags = pq.read_table(os.path.join(run_dir, "questions"), columns=["tags"]).column("tags").to_pylist()
    cooccurrence = Counter(t for row in tags if tag in row for t in row if t != tag)
    timings = dict(report["timings"])
    return {"questions": report["counts"]["questions"], "rows": report["counts"]["rows"],
            "labelled": report["labelled_questions"], "cooccurrence": dict(cooccurrence),
            "accuracy": report["classifier"]["accuracy"], "in_process_total": timings.pop("total"), "stages": timings}


def phases(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Seconds of each phase of our run, from the times its log lines arrived (and exit, for the last)."""
    out, phase, since = {}, "imports", 0.0
    for pattern, following in PHASES:
        at = next((t for t, line in lines if re.search(pattern, line)), None)
        if at is not None:
            out[phase], phase, since = at - since, following, at
    out[phase] = wall - since
    return {k: round(v, 3) for k, v in out.items()}


def whole_process(name: str, path: str, tag: str, labels: list[str]) -> dict:
    """One run of one method as its own process: wall seconds exec → exit, peak memory, answers."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir:
        argv = command(name, path, workdir, tag, labels)
        lines: list[tuple[float, str]] = []
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def read_stderr() -> None:
            for line in proc.stderr:
                lines.append((time.perf_counter() - start, line.rstrip()))
        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        with PeakRSS(root=proc.pid) as rss:
            code = proc.wait()
            wall = time.perf_counter() - start
        reader.join()
        if code != 0:
            raise SystemExit(f"bench: {name} failed (exit {code}): {' '.join(argv)}\n"
                             + "\n".join(line for _, line in lines[-30:]))
        if METHODS[name] is None:
            result = {**answers_of_ours(os.path.join(workdir, "run"), tag), "phases": phases(lines, wall)}
        else:
            with open(os.path.join(workdir, "result.json")) as f:
                result = json.load(f)
            result["in_process_total"] = result.pop("total")
    return {**result, "wall": round(wall, 3), "in_process_total": round(result["in_process_total"], 3),
            "stages": {k: round(v, 3) for k, v in result["stages"].items()},
            "peak_rss_tree_mib": round(rss.tree / MiB, 1), "peak_rss_largest_mib": round(rss.largest / MiB, 1)}


def agreement(results: dict[str, dict], tolerance: float) -> dict:
    """Every method's question count and co-occurrence counts equal ours; accuracies within ``tolerance``."""
    mine = results["ours"]
    checks = {
        "questions_equal": all(r["questions"] == mine["questions"] for r in results.values()),
        "cooccurrence_equal": all(r["cooccurrence"] == mine["cooccurrence"] for r in results.values()),
        "accuracies": {name: round(r["accuracy"], 4) for name, r in results.items()},
        f"accuracy_within_{tolerance}": all(abs(r["accuracy"] - mine["accuracy"]) <= tolerance
                                            for r in results.values()),
    }
    checks["agrees"] = {name: r["questions"] == mine["questions"] and r["cooccurrence"] == mine["cooccurrence"]
                        and abs(r["accuracy"] - mine["accuracy"]) <= tolerance for name, r in results.items()}
    checks["ok"] = all(checks["agrees"].values())
    if not checks["ok"]:
        checks["differing"] = {
            name: {"questions": r["questions"],
                   "cooccurrence": {t: (r["cooccurrence"].get(t), mine["cooccurrence"].get(t))
                                    for t in set(r["cooccurrence"]) | set(mine["cooccurrence"])
                                    if r["cooccurrence"].get(t) != mine["cooccurrence"].get(t)}}
            for name, r in results.items()
            if r["questions"] != mine["questions"] or r["cooccurrence"] != mine["cooccurrence"]}
    return checks


def summary(rounds: list[dict], name: str) -> dict:
    runs = [r[name] for r in rounds]
    median = lambda values: round(statistics.median(values), 3)  # noqa: E731
    out = {
        "wall": median([r["wall"] for r in runs]),
        "in_process_total": median([r["in_process_total"] for r in runs]),
        "stages": {s: median([r["stages"].get(s, 0.0) for r in runs]) for s in runs[0]["stages"]},
        "questions_per_s": median([r["questions"] / r["wall"] for r in runs]),
        "peak_rss_tree_mib": max(r["peak_rss_tree_mib"] for r in runs),
        "peak_rss_largest_mib": max(r["peak_rss_largest_mib"] for r in runs),
    }
    if "phases" in runs[0]:
        out["phases"] = {p: median([r["phases"].get(p, 0.0) for r in runs]) for p in runs[0]["phases"]}
    return out


def machine() -> dict:
    from threadpoolctl import threadpool_info

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[:1] \
        if shutil.which("java") else None
    return {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(), "java": java,
        "versions": {m: getattr(__import__(m), "__version__", None)
                     for m in ("dask", "distributed", "pyarrow", "polars", "pyspark", "duckdb")
                     if importlib.util.find_spec(m)},
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "blas": [{k: i.get(k) for k in ("internal_api", "version", "num_threads")} for i in threadpool_info()],
    }


def table(report: dict) -> str:
    lines = [f"{report['file']} ({report['bytes'] / 1e6:.1f} MB, {report['questions']} questions), "
             f"{report['rounds']} round(s), medians; wall = exec to exit; ratio = their wall / ours"]
    for name, s in report["summary"].items():
        stages = ", ".join(f"{k} {v:.2f}" for k, v in s.get("phases", s["stages"]).items())
        ratio = report["ratios"].get(name)
        lines.append(f"  {name:<7} wall {s['wall']:7.2f} s  in-process {s['in_process_total']:7.2f} s  "
                     f"{'' if ratio is None else f'ratio {ratio:5.2f}  '}"
                     f"peak RSS tree {s['peak_rss_tree_mib']:6.0f} MiB (largest {s['peak_rss_largest_mib']:.0f})"
                     f"\n          {stages}")
    for name, reason in report["skipped"].items():
        lines.append(f"  {name:<7} skipped: {reason}")
    if "limits" in report:
        lines.append(f"  limits per core: {report['limits']['rates']}")
    lines.append(f"  agreement: {report['agreement']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", default="200MB", help="generated Posts.xml size (default 200MB)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", help="a Posts.xml to use instead of a generated one (a real site, say)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the methods")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--tag", default="python", help="the analytics tag (default python)")
    parser.add_argument("--labels", nargs=2, default=["python", "r"], metavar=("A", "B"),
                        help="the two tags the classifiers tell apart (default python r)")
    parser.add_argument("--limits", action="store_true", help="also measure the per-core limits of the bare operations")
    parser.add_argument("--accuracy-tolerance", type=float, default=0.02,
                        help="largest accuracy difference from ours that counts as agreeing (default 0.02)")
    parser.add_argument("--smoke", action="store_true",
                        help="a 10 MB generated file, one round: the methods must agree (no timing). Its ~150 test"
                        " questions, split differently by each method, cannot resolve ±0.02: tolerance 0.12")
    parser.add_argument("--data-dir", default=data.DEFAULT_DIR, help="where generated inputs are cached")
    parser.add_argument("--output", default=RESULTS, help="the JSON results file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.rounds, args.accuracy_tolerance = "10MB", 1, 0.12
    names = args.methods.split(",")
    if "ours" not in names:
        parser.error("the methods must include ours: everything is compared with it")
    skipped = {name: reason for name in names if (reason := missing(name))}
    names = [n for n in names if n not in skipped]
    path = args.input or data.ensure(args.size, args.seed, args.data_dir)
    report = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "file": path, "bytes": os.path.getsize(path), "rounds": args.rounds, "skipped": skipped,
              "generated": data.generation(path), "per_round": []}
    for i in range(args.rounds):
        order = names[i % len(names):] + names[: i % len(names)]  # alternate who goes first
        results = {}
        for name in order:
            results[name] = whole_process(name, path, args.tag, args.labels)
            print(f"round {i + 1}: {name} {results[name]['wall']:.2f} s", file=sys.stderr, flush=True)
        report["per_round"].append({"order": order, "agreement": agreement(results, args.accuracy_tolerance),
                                    **{n: {k: v for k, v in r.items() if k != "cooccurrence"}
                                       for n, r in results.items()}})
    finish(report, names, path, args.limits)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(table(report))
    print(f"results: {args.output}")
    return 0 if report["agreement"]["ok"] else 1


def finish(report: dict, names: list[str], path: str, with_limits: bool) -> None:
    """Medians, agreement over all rounds and, only if every round agreed, the ratios."""
    rounds = report["per_round"]
    report["summary"] = {name: summary(rounds, name) for name in names}
    report["agreement"] = {"ok": all(r["agreement"]["ok"] for r in rounds),
                           "accuracies": [r["agreement"]["accuracies"] for r in rounds]}
    report["questions"] = rounds[0]["ours"]["questions"]
    report["rows"] = rounds[0]["ours"]["rows"]
    report["ratios"], report["ratios_per_round"] = {}, {}
    for other in names:  # a ratio only for a method whose answers agreed with ours in every round
        if other != "ours" and all(r["agreement"]["agrees"][other] for r in rounds):
            per_round = [round(r[other]["wall"] / r["ours"]["wall"], 3) for r in rounds]
            report["ratios_per_round"][other] = per_round
            report["ratios"][other] = round(statistics.median(per_round), 3)
    if with_limits:
        report["limits"] = {"rates": limits.measure(path)}


if __name__ == "__main__":
    sys.exit(main())
