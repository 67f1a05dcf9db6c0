"""One runner for every validation experiment.

An *experiment* turns a configuration into rows and each row into draws:

    configuration -> draw tasks -> per-draw metrics -> row summary -> verdict

:class:`Experiment` is the interface; :mod:`validation.montecarlo.compare`
(ridge readouts), :mod:`validation.montecarlo.glm_validate` (convex losses)
and :mod:`validation.montecarlo.spectrum_check` (layer spectra) implement it.
:func:`run_experiment` does the rest the same way for all of them:

- the draws run in-process, on any :class:`concurrent.futures.Executor` or
  on a Dask cluster (:mod:`validation.montecarlo.executors`), with the BLAS
  thread pools pinned to one thread per draw, so the stored numbers do not
  depend on where a draw ran;
- every finished draw goes to the locked, append-only
  :class:`~validation.montecarlo.records.ResultStore` at once; a row is
  summarised as soon as its last draw lands; ``resume`` reuses the stored
  draws and rows of the same configuration;
- the report counts the row statuses and gives one overall verdict
  (:func:`overall_verdict`); the exit code of a command follows the verdict.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from rfq_theory.checks import InputError, check_scalar

from .montecarlo.executors import ExecutionInfo, describe, execute
from .montecarlo.records import (
    CSV_COLUMNS,
    ResultStore,
    atomic_write_text,
    check_ridge_draw,
    check_ridge_row,
    dumps,
    fingerprint,
    strict_json,
)

__all__ = ["Experiment", "run_experiment", "overall_verdict", "status_counts", "executor_for", "STORE_FIELDS"]

#: Fields of a draw result that describe where it ran (stored next to the metrics).
STORE_FIELDS = ("seconds", "host", "pid")


class Experiment:
    """Interface of a validation experiment (subclasses fill in the methods).

    Attributes: ``name`` (the command, for messages), ``trials`` (draws per
    row), ``csv_columns`` (columns of ``results.csv``).
    """

    name = "validate"
    trials: int = 1
    csv_columns: list[str] = CSV_COLUMNS

    # -- identity
    def settings(self) -> dict:
        """The whole configuration (fingerprint of the rows)."""
        raise NotImplementedError

    def draw_settings(self) -> dict:
        """The settings that determine a draw's numbers (fingerprint of the draws)."""
        raise NotImplementedError

    def row_keys(self) -> list[str]:
        """Keys of the rows, in report order."""
        raise NotImplementedError

    # -- work
    def prepare(self, keys: list[str]) -> None:
        """Work that must succeed before any draw runs (the theory of the rows ``keys``)."""

    def task(self, key: str, trial: int):
        """The picklable draw task of draw ``trial`` of row ``key`` (has ``key``, ``trial``, ``run()``)."""
        raise NotImplementedError

    def check_memory(self, workers: int, local_draws: bool) -> None:
        """Refuse (InputError) a run that does not fit in memory."""

    def check_draw(self, rec: dict) -> str | None:
        """What is wrong with a stored draw record (``None``: nothing)."""
        return check_ridge_draw(rec)

    def check_row(self, rec: dict) -> str | None:
        """What is wrong with a stored row record (``None``: nothing)."""
        return check_ridge_row(rec)

    def draw_metrics(self, result: dict, store_dir) -> dict:
        """The fields of a draw result that are stored (side outputs may be written to ``store_dir``)."""
        return {k: v for k, v in result.items() if k not in ("key", "trial") + STORE_FIELDS}

    def summarize_row(self, key: str, draws: dict[int, dict]) -> dict:
        """The row record of ``key`` from its draws (carries ``key`` and ``status``)."""
        raise NotImplementedError

    # -- report
    def report(self, rows: list[dict], fp: str) -> dict:
        """Report dict: ``config``, ``summary`` (with ``verdict``), ``warnings``, ``rows``, ``files``."""
        raise NotImplementedError

    def write_outputs(self, store: ResultStore, rows: list[dict], report: dict, figure: bool) -> None:
        """Write figures and other files of the finished run into ``store.dir`` (``report["files"]``)."""

    def format(self, report: dict) -> str:
        """Plain-text table of the report."""
        raise NotImplementedError


def status_counts(rows: Iterable[dict]) -> dict[str, int]:
    """Rows per status (``pass``, ``fail``, ``inconclusive``, ``n/a``)."""
    rows = list(rows)
    return {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "inconclusive", "n/a")}


def overall_verdict(rows: list[dict], expected: int) -> str:
    """``incomplete`` (rows missing), ``fail`` (a row fails), ``inconclusive`` (a row lacks draws or none
    passes), else ``pass``.  A command exits 0 exactly when this is ``pass``."""
    counts = status_counts(rows)
    if len(rows) != expected:
        return "incomplete"
    if counts["fail"]:
        return "fail"
    if counts["inconclusive"] or not counts["pass"]:
        return "inconclusive"
    return "pass"


def _progress(total, initial, enabled, desc):
    """A progress bar on standard error, drawn only when it is a terminal (no carriage returns in logs)."""
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, disable=None if enabled else True, desc=desc, unit="draw", file=sys.stderr
    )


def executor_for(workers: int, scheduler: str | None, executor, log):
    """``(executor, cleanup)``: the given executor, a client of ``scheduler`` or an embedded LocalCluster."""
    if executor is not None:
        return executor, lambda: None
    if scheduler is not None:
        from .montecarlo.executors import connect

        client = connect(scheduler)
        return client, client.close
    if workers > 1:
        from .montecarlo.executors import local_cluster

        client, cluster = local_cluster(workers)

        def close():
            try:
                client.close()
            finally:
                cluster.close()

        return client, close
    return None, lambda: None


def run_experiment(
    experiment: Experiment,
    out=None,
    resume: bool = False,
    progress: bool = True,
    figure: bool = True,
    *,
    executor=None,
    client=None,
    workers: int = 1,
    scheduler: str | None = None,
    on_draw: Callable[[dict], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run every draw of every row of ``experiment`` and return the report dict.

    ``out``: folder of the result store (``None``: nothing written);
    ``resume``: reuse the draws and rows of this configuration stored there;
    ``executor``/``client``: where the draws run (a ``distributed.Client`` or
    any Executor); without one, ``workers > 1`` starts an embedded Dask
    ``LocalCluster`` and ``scheduler`` connects to an existing one (default:
    in this process); ``on_draw``: called in the driver with each stored
    draw record; ``log``: called with one-line notices.
    """
    start = time.perf_counter()
    if executor is not None and client is not None:
        raise InputError("give executor or client, not both")
    executor = executor if executor is not None else client
    workers = check_scalar(workers, "workers", int, min_val=1)
    info = (
        describe(executor)
        if executor is not None
        else ExecutionInfo("dask" if (scheduler or workers > 1) else "in-process", workers)
    )
    local_draws = scheduler is None and (executor is None or info.kind != "dask")
    experiment.check_memory(workers if executor is None else max(1, info.workers), local_draws)
    fp = fingerprint(experiment.settings())
    draw_fp = fingerprint(experiment.draw_settings())
    store = (
        ResultStore(
            out,
            fp,
            draw_fp,
            resume,
            check_draw=experiment.check_draw,
            check_row=experiment.check_row,
            csv_columns=experiment.csv_columns,
        )
        if out is not None
        else None
    )
    cleanup = lambda: None  # noqa: E731
    try:
        keys = experiment.row_keys()
        trials = experiment.trials
        rows: dict[str, dict] = {}
        draws: dict[str, dict[int, dict]] = {key: {} for key in keys}
        if store is not None:
            rows = {k: r for k, r in store.rows.items() if k in draws}
            for (key, t), rec in store.draws.items():
                if key in draws and key not in rows and t < trials:
                    draws[key][t] = rec
        reused_rows = len(rows)
        todo = [key for key in keys if key not in rows]
        experiment.prepare(todo)  # fail early, before simulating

        def finish_row(key):
            row = experiment.summarize_row(key, draws[key])
            if store is not None:
                row = store.add_row(row)
            rows[key] = row
            if store is not None:
                store.write_csv(rows[k] for k in keys if k in rows)

        tasks = [experiment.task(key, t) for key in todo for t in range(trials) if t not in draws[key]]
        for key in todo:  # rows whose draws were all stored before an interruption
            if len(draws[key]) >= trials:
                finish_row(key)
        total = trials * len(keys)
        reused_draws = total - len(tasks)
        ran = {"n": 0}
        if tasks:
            executor, cleanup = executor_for(workers, scheduler, executor, log)
            info = describe(executor)
            if info.dashboard and log is not None:
                log(f"dask: {info.workers} workers, dashboard at {info.dashboard}")
            bar = _progress(total, reused_draws, progress, experiment.name)

            def on_done(task, result: dict):
                metrics = experiment.draw_metrics(result, store.dir if store is not None else None)
                extra = {k: result.get(k) for k in STORE_FIELDS}
                if store is not None:
                    rec = store.add_draw_record(task.key, task.trial, metrics, **extra)
                else:
                    rec = strict_json({"record": "draw", "key": task.key, "trial": task.trial, **metrics, **extra})
                draws[task.key][task.trial] = rec
                ran["n"] += 1
                bar.update(1)
                if len(draws[task.key]) >= trials and task.key not in rows:
                    finish_row(task.key)
                if on_draw is not None:
                    on_draw(rec)

            try:
                execute(tasks, on_done, executor)
            finally:
                bar.close()
        ordered = [rows[key] for key in keys if key in rows]
        report = experiment.report(ordered, fp)
        report["reused_rows"] = reused_rows
        report["execution"] = dict(
            info.as_dict(), draws_run=ran["n"], draws_reused=reused_draws, wall_s=time.perf_counter() - start
        )
        report["elapsed_s"] = time.perf_counter() - start
        if store is not None:
            report["store"] = {
                "damaged_lines": store.damaged,
                "damaged_file": str(store.damaged_path) if store.damaged else None,
                "moved_to": str(store.moved_to) if store.moved_to else None,
            }
            if store.damaged:
                report["warnings"].append(
                    f"{store.damaged} damaged line(s) of results.jsonl set aside in {store.damaged_path.name}"
                )
            if store.moved_to is not None:
                report["warnings"].append(
                    f"an earlier results.jsonl was moved to {store.moved_to.name} (use --resume to continue a run)"
                )
            store.write_csv(ordered)
            report["files"].update({"jsonl": str(store.jsonl), "csv": str(store.csv)})
            experiment.write_outputs(store, ordered, report, figure)
            report["files"]["report"] = str(store.dir / "report.json")
            atomic_write_text(store.dir / "report.json", dumps(report, indent=1))
        return strict_json(report)
    finally:
        try:
            cleanup()
        finally:
            if store is not None:
                store.close()
