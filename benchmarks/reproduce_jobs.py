"""Wall time of `gemner reproduce --config paper-tiny` one step at a time against `--jobs N` (independent steps side
by side in worker processes), on the same synthetic benchmark, in one process, with the rows of both compared.

    python benchmarks/reproduce_jobs.py --posts 300 --threads 2 --jobs 1 2 --quick

Each setting runs from an empty run folder (nothing reused); the first setting is the baseline of the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="the smoke run's post limits and epochs")
    args = parser.parse_args()

    from gemner.data.synthetic import write_synthetic_benchmark
    from gemner.pipeline.reproduce_gem import GemSettings
    from gemner.pipeline.reproduce_gem_report import run_gem_reproduction

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        bench = root / "bench"
        write_synthetic_benchmark(bench, posts=args.posts, seed=args.seed)
        seconds, rows = {}, {}
        for jobs in args.jobs:
            settings = GemSettings(str(bench), "paper-tiny", runs=root / f"runs-jobs{jobs}", quick=args.quick,
                                   device="cpu", threads=args.threads, jobs=jobs)
            start = time.perf_counter()
            run_gem_reproduction(settings, log=lambda _line: None, json_file=root / f"jobs{jobs}.json")
            seconds[jobs] = time.perf_counter() - start
            rows[jobs] = json.loads((root / f"jobs{jobs}.json").read_text())["rows"]
            print(f"--jobs {jobs}: {seconds[jobs]:.0f} s", flush=True)
    first = args.jobs[0]
    print(f"\n{args.posts} posts (seed {args.seed}), --threads {args.threads}{', --quick' if args.quick else ''}")
    print("| --jobs | wall s | time x --jobs " + str(first) + " | rows as --jobs " + str(first) + " |")
    print("| ---: | ---: | ---: | --- |")
    for jobs in args.jobs:
        same = "yes" if rows[jobs] == rows[first] else "no"
        print(f"| {jobs} | {seconds[jobs]:.0f} | {seconds[jobs] / seconds[first]:.2f}x | {same} |")


if __name__ == "__main__":
    main()
