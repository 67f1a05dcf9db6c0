"""Run one page's examples in order (a child process of the documentation build).

Usage: ``python docs_exec_runner.py STEPS.json RESULTS.json`` in the page's temporary folder.
Python steps share one namespace; ``rfq`` steps run ``python -m rfq_theory ARGS``. The results
file is rewritten after every step (so a timeout still shows which step was running); the first
failing step ends the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
import traceback


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(steps: list[dict], source: str, results_path: str) -> None:
    namespace: dict = {"__name__": "__main__"}
    results: list[dict] = []

    def save() -> None:
        with open(results_path, "w") as f:
            json.dump(results, f)

    for step in steps:
        entry = {"line": step["line"], "kind": step["kind"], "status": "running", "seconds": 0.0}
        results.append(entry)
        save()
        t0 = time.perf_counter()
        if step["kind"] == "python":
            # pad with blank lines so that tracebacks give the line numbers of the page
            code = "\n" * (step["line"] - 1) + step["code"]
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, source, "exec"), namespace)
            except BaseException as exc:  # noqa: BLE001 - every failure of an example is reported
                entry["status"] = "failed"
                # the traceback from the example's own frame on, without this runner's
                entry["error"] = _tail("".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)))
        else:
            proc = subprocess.run([sys.executable, "-m", "rfq_theory", *step["args"]], capture_output=True, text=True)
            if proc.returncode != 0:
                entry["status"] = "failed"
                entry["error"] = f"exit code {proc.returncode}\n" + _tail(proc.stderr or proc.stdout)
        entry["seconds"] = time.perf_counter() - t0
        if entry["status"] == "running":
            entry["status"] = "ok"
        save()
        if entry["status"] == "failed":
            break


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        payload = json.load(f)
    run(payload["steps"], payload["source"], sys.argv[2])
