"""What training from an event log costs, end to end: `leadscore train` against one raw LightGBM fit.

The job: `leadscore train` on the demo config (`configs/demo.yaml`, every section but accounts kept) pointed at a seeded
synthetic funnel of `--leads` leads, in a child process, with its own MLflow store (sqlite) and artifacts
in the work folder. Measured: wall time; CPU time of the whole process tree (the job, its worker processes
and any thread: `common.cpu_time` before and after, the finished processes counted once reaped, and
cross-checked against per-process readings sampled while it runs); peak resident memory, twice: the sum over
the process tree sampled every 0.2 s, and the largest single process's own peak (`ru_maxrss` of the tree,
from the small launcher of `common`, so that this benchmark's own memory does not count).

The reference, measured in the same run: one raw LightGBM fit (`LGBMClassifier` with the config's LightGBM
parameters, threads as training sets them, and the tree count of the trained model, read from the run; when
the winner is not LightGBM, `model.lightgbm.n_estimators`, the bound early stopping never passes, or `--trees`) on
the rows the registered model was refitted on (every window of the split, train + calibration + test: the
training rows as `leadscore.training.dataset` builds them, less the rows the split purges), categories encoded
beforehand. The ratio says how many such fits the whole training costs. The per-stage times the run logs
(`time_<stage>_s` metrics, read with the MLflow client) show where the time goes.

Goals (the issue): under 3 minutes from 100,000 leads, under 10 minutes from 1,000,000 leads, on 2 cores.

    .venv/bin/python benchmarks/training_cost.py --leads 100000 --workdir /tmp/bench-training
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import _LAUNCHER, cpu_time, launched_output, lead_demo_config, machine

EXPERIMENT = "leadscore-training-cost"
GOALS_MINUTES = {100_000: 3, 1_000_000: 10}  # leads: minutes, from the issue


def funnel(workdir: Path, leads: int, seed: int) -> Path:
    """The synthetic funnel's folder, written chunk by chunk unless a kept work folder already holds it."""
    from leadscore.synthetic.funnel import generate_to_dir

    out = workdir / f"funnel_{leads}_seed{seed}"
    if not out.exists():
        partial = workdir / f"{out.name}.partial"
        started = time.perf_counter()
        generate_to_dir(leads, seed, partial)
        partial.rename(out)  # a run stopped half way leaves no folder that looks complete
        print(f"generated {leads:,} leads in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def write_config(workdir: Path, history: Path, max_rows: str | None = None) -> Path:
    """The demo config with its data path at the funnel and its own experiment and registered model, and
    `model.max_rows` when given ('null': every row)."""
    raw = lead_demo_config(history)
    if max_rows is not None:
        raw.setdefault("model", {})["max_rows"] = None if max_rows == "null" else int(max_rows)
    raw["tracking"] = {**raw.get("tracking", {}), "experiment": EXPERIMENT, "registered_model": EXPERIMENT}
    path = workdir / "training_cost.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class TreeSampler:
    """Samples the process tree under `pid` every `every` seconds: the peak of its summed resident memory,
    and each process's latest CPU time (a cross-check of the CPU reading taken once processes are reaped)."""

    def __init__(self, pid: int, every: float = 0.2):
        import psutil

        self._root = psutil.Process(pid)
        self.every = every
        self.peak_rss = 0
        self.cpu: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                processes = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = 0
            for process in processes:
                try:
                    with process.oneshot():
                        rss += process.memory_info().rss
                        times = process.cpu_times()
                        self.cpu[(process.pid, process.create_time())] = times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(self.every)

    @property
    def sampled_cpu(self) -> float:
        return sum(self.cpu.values())


def own_cpu() -> float:
    """CPU seconds of this process alone (its sampling thread), taken out of `cpu_time`'s tree total."""
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def run_training(config: Path, workdir: Path, env: dict) -> dict:
    """`leadscore train --config <config>` in a child process: wall, CPU and peak memory, and its output."""
    command = [sys.executable, "-m", "leadscore.cli", "train", "--config", str(config)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cpu_before, own_before, started = cpu_time(), own_cpu(), time.perf_counter()
        # cwd: anything MLflow might write relative to the working folder stays in the work folder.
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, *command], env=env, cwd=workdir, stdout=out,
                                   stderr=err)
        with TreeSampler(process.pid) as sampler:
            code = process.wait()
        seconds = time.perf_counter() - started
        cpu = cpu_time() - cpu_before - (own_cpu() - own_before)  # the tree's, not this process's (the sampler)
        stdout, stderr, process_peak_mb = launched_output(command, code, out, err)
    return {"wall": seconds, "cpu": max(cpu, sampler.sampled_cpu), "cpu_reaped": cpu, "cpu_sampled": sampler.sampled_cpu,
            "tree_peak_mb": sampler.peak_rss / 2**20, "process_peak_mb": process_peak_mb,
            "stdout": stdout, "stderr": stderr}


def latest_run(tracking_uri: str):
    """The latest finished run of the benchmark's experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0]


def tree_count(run, default: int) -> tuple[int, str]:
    """The registered model's tree count, from the run's account of its refit (a LightGBM winner), else `default`."""
    found = re.search(r"([\d,]+) trees", run.data.tags.get("deployed.refit", ""))
    if found:
        return int(found.group(1).replace(",", "")), f"the trained model's ({run.data.params.get('trained.model')})"
    return default, f"model.lightgbm.n_estimators (the winner, {run.data.params.get('trained.model')}, has no trees)"


def raw_fit(config: Path, n_trees: int) -> dict:
    """One LightGBM fit of `n_trees` trees on the rows the registered model was refitted on (every window), timed alone."""
    import pandas as pd

    from leadscore.config import load_config
    from leadscore.model.encoding import FrameEncoder
    from leadscore.training.candidates import lightgbm_classifier, lightgbm_threads
    from leadscore.training.dataset import load_training_table
    from leadscore.training.split import split_frame

    cfg = load_config(config)
    started = time.perf_counter()
    table = load_training_table(cfg)
    split = split_frame(table.frame, cfg.split, label_column=table.label_column, time_column=table.time_column,
                        horizon_days=cfg.event_log.horizon_days, seed=cfg.model.seed)
    everything = pd.concat([split.train, split.calibration, split.test])  # as the pipeline's deployed refit
    X = FrameEncoder(cfg.model.min_category_count).fit_transform(everything[table.feature_columns])
    y = everything[table.label_column].to_numpy()
    prepared = time.perf_counter() - started
    threads = lightgbm_threads(cfg.model.lightgbm, len(X))
    model = lightgbm_classifier(cfg.model.lightgbm, n_trees, cfg.model.seed, threads)
    cpu_before, started = time.process_time(), time.perf_counter()  # LightGBM's threads are this process's
    model.fit(X, y)
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_before, "rows": len(X),
            "all_rows": len(table.frame), "features": X.shape[1], "threads": threads, "prepared": prepared}


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trees", type=int, help="the reference's tree count; default: the trained model's, or "
                        "model.lightgbm.n_estimators (an upper bound) when the winner is not LightGBM")
    parser.add_argument("--max-rows", help="model.max_rows for the run: a number, or 'null' to fit every row "
                        "(default: the config's default)")
    parser.add_argument("--workdir", type=Path, help="kept between runs (the funnel is reused); default: a new temporary folder")
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="leadscore-training-cost-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{machine()}; work folder {workdir}", flush=True)

    history = funnel(workdir, args.leads, args.seed)
    config = write_config(workdir, history, args.max_rows)
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}

    load_before = load()
    print(f"load average (1, 5, 15 min) before: {load_before}", flush=True)
    job = run_training(config, workdir, env)
    run = latest_run(tracking_uri)
    from leadscore.config import load_config

    n_trees, source = tree_count(run, load_config(config).model.lightgbm.n_estimators)
    if args.trees:
        n_trees, source = args.trees, "--trees"
    reference = raw_fit(config, n_trees)
    load_after = load()

    stages = {key.removeprefix("time_").removesuffix("_s"): value
              for key, value in run.data.metrics.items() if key.startswith("time_") and key.endswith("_s")}
    minutes = job["wall"] / 60
    goal = GOALS_MINUTES.get(args.leads)

    print()
    print(f"leadscore train, {args.leads:,} leads (seed {args.seed}), {reference['all_rows']:,} training rows, "
          f"{reference['features']} features; winner {run.data.params.get('trained.model')}, {n_trees} trees")
    m = run.data.metrics
    if "sample_fraction" in m:
        print(f"  trained on a sample of whole leads (model.max_rows): {m['sample_rows']:,.0f} of "
              f"{m['sample_rows_total']:,.0f} rows, {m['sample_units']:,.0f} of {m['sample_units_total']:,.0f} leads "
              f"(fraction {m['sample_fraction']:.4f})")
    else:
        print("  trained on every row (no sample)")
    print(f"  test window: ROC AUC {m.get('test_roc_auc', float('nan')):.4f}, log loss "
          f"{m.get('test_log_loss', float('nan')):.4f} (plain logistic regression on the same rows: ROC AUC "
          f"{m.get('baseline_logistic_test_roc_auc', float('nan')):.4f}, log loss "
          f"{m.get('baseline_logistic_test_log_loss', float('nan')):.4f})")
    print(f"  wall {job['wall']:.1f} s ({minutes:.2f} min), CPU {job['cpu']:.1f} s "
          f"(reaped processes {job['cpu_reaped']:.1f} s, sampled {job['cpu_sampled']:.1f} s)")
    print(f"  peak memory: process tree (sampled every 0.2 s) {job['tree_peak_mb']:,.0f} MB; "
          f"largest single process (ru_maxrss) {job['process_peak_mb']:,.0f} MB")
    print(f"reference: one raw LightGBM fit, {n_trees} trees ({source}), {reference['rows']:,} rows "
          f"(train + calibration + test windows, as the registered model), {reference['threads']} threads")
    print(f"  wall {reference['wall']:.1f} s, CPU {reference['cpu']:.1f} s "
          f"(building, splitting and encoding the rows before it, not counted: {reference['prepared']:.1f} s)")
    print(f"ratio leadscore train / one raw fit: wall {job['wall'] / reference['wall']:.1f}, "
          f"CPU {job['cpu'] / reference['cpu']:.1f}")
    if stages:
        total = sum(stages.values())
        print("stage times (the run's time_<stage>_s metrics):")
        for name, seconds in sorted(stages.items(), key=lambda item: -item[1]):
            print(f"  {name:<20} {seconds:8.1f} s  {100 * seconds / total:5.1f} %")
        print(f"  {'(sum)':<20} {total:8.1f} s; the rest of the wall time is start-up and imports")
    else:
        print("stage times: none logged by the run")
    if goal is None:
        print(f"goal: none set for {args.leads:,} leads (the issue sets 100,000: 3 min; 1,000,000: 10 min)")
    else:
        print(f"goal: under {goal} min for {args.leads:,} leads: {'met' if minutes < goal else 'NOT met'} "
              f"({minutes:.2f} min)")
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
          f"({os.cpu_count()} cores: a load above that means other jobs were running)")


if __name__ == "__main__":
    main()
