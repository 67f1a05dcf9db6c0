"""Sphinx extension: run the examples of every page while the site builds.

For each page (when Sphinx reads it) the ``python`` fences run in order in one namespace and the
``rfq ...`` lines of ``bash``/``console`` fences run as ``python -m rfq_theory ...``, all in one
child process whose working directory is a fresh temporary folder, with ``MPLBACKEND=Agg`` and the
checkout first on ``PYTHONPATH``. An example that raises, or a command that exits non-zero, becomes
a warning at the page and line of the example (so ``sphinx-build -W`` fails); the page's later
examples are not run. The rules that pick the examples and the ``no-run`` markers are in
``docs_exec_blocks``.

Pages with examples are read again on every build (the code they run may have changed since).
Configuration (``conf.py`` or ``-D``): ``docs_exec_enabled`` (default true), ``docs_exec_timeout``
(seconds for one page's examples, default 300).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from docs_exec_blocks import runnable
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)
RUNNER = Path(__file__).with_name("docs_exec_runner.py")


def _records(env: BuildEnvironment) -> dict:
    if not hasattr(env, "docs_exec_records"):
        env.docs_exec_records = {}
    return env.docs_exec_records


def _environment(root: Path) -> dict:
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env


def run_page(app: Sphinx, docname: str, source: str) -> None:
    path = app.env.doc2path(docname)
    steps, skipped = runnable(source)
    record = {
        "runnable": len(steps),
        "steps": 0,
        "python": 0,
        "rfq": 0,
        "seconds": 0.0,
        "skipped": [(b.line, b.reason) for b in skipped],
    }
    _records(app.env)[docname] = record
    if not steps or not app.config.docs_exec_enabled:
        return
    root = Path(app.confdir).parent
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rfq-docs-") as tmp:
        payload = Path(tmp, ".steps.json")
        results_path = Path(tmp, ".results.json")
        payload.write_text(json.dumps({"steps": [asdict(s) for s in steps], "source": str(path)}))
        timeout = app.config.docs_exec_timeout
        # a session of its own, so that a timeout also ends the rfq command the runner started
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(payload), str(results_path)],
            cwd=tmp,
            env=_environment(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate()
            timed_out = True
        results = json.loads(results_path.read_text()) if results_path.exists() else []
    record["seconds"] = time.perf_counter() - t0
    for entry in results:
        if entry["status"] == "ok":
            record["steps"] += 1
            record[entry["kind"]] += 1
        logger.verbose("%s:%d: example ran in %.1f s", path, entry["line"], entry["seconds"])
    last = results[-1] if results else None
    not_run = len(steps) - len(results)
    later = f" ({not_run} later example(s) of the page not run)" if not_run else ""
    if timed_out:
        line = last["line"] if last else steps[0].line
        logger.warning(
            "example still running after the page's %d s: mark slow examples with <!-- docs: no-run -->%s",
            timeout,
            later,
            location=(docname, line),
            type="docs_exec",
        )
    elif last and last["status"] == "failed":
        what = "Python example" if last["kind"] == "python" else "rfq command"
        logger.warning(
            "%s failed%s:\n%s", what, later, last["error"], location=(docname, last["line"]), type="docs_exec"
        )
    elif proc.returncode != 0:
        logger.warning(
            "example runner failed (exit code %d):\n%s",
            proc.returncode,
            (stderr or "")[-2000:],
            location=(docname, steps[0].line),
            type="docs_exec",
        )


def _source_read(app: Sphinx, docname: str, content: list[str]) -> None:
    run_page(app, docname, content[0])


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    _records(env).pop(docname, None)


def _merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    mine = _records(env)
    for docname, record in _records(other).items():
        if docname in docnames:
            mine[docname] = record


def _outdated(app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set) -> list[str]:
    # pages with examples are read (and their examples run) on every build, not only when the page
    # changed: the code they run may have changed
    if not app.config.docs_exec_enabled:
        return []
    return [docname for docname, record in _records(env).items() if record["runnable"]]


def _summary(app: Sphinx, env: BuildEnvironment) -> None:
    records = _records(env)
    python = sum(r["python"] for r in records.values())
    rfq = sum(r["rfq"] for r in records.values())
    seconds = sum(r["seconds"] for r in records.values())
    logger.info("docs examples: %d Python blocks and %d rfq commands ran (%.1f s)", python, rfq, seconds)
    for docname in sorted(records):
        r = records[docname]
        if r["steps"]:
            logger.info("  %s: %d example(s), %.1f s", docname, r["steps"], r["seconds"])
        for line, reason in r["skipped"]:
            logger.info("  %s:%d: not run (no-run marker%s)", docname, line, f": {reason}" if reason else "")


def setup(app: Sphinx) -> dict:
    app.add_config_value("docs_exec_enabled", True, "env", bool)
    app.add_config_value("docs_exec_timeout", 300, "env", int)
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-check-consistency", _summary)
    return {"version": "1", "env_version": 1, "parallel_read_safe": True, "parallel_write_safe": True}
