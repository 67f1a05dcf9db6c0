"""The documentation site's local Sphinx extensions (``docs/_ext``): which examples run, how a
failing example is reported, and the check that the API reference covers ``rfq_theory.__all__``.
The site itself is built by ``sphinx-build -W --keep-going -b html docs docs/_build/html``."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

from docs_exec_blocks import fenced_blocks, runnable, shell_commands  # noqa: E402
from docs_exec_runner import run  # noqa: E402

PAGE = """# Page

Text with ``` inline ``` ticks.

```python
x = 1
```

<!-- docs: no-run (takes minutes) -->

```bash
rfq validate --trials 8
```

````markdown
```python
not_code_of_this_page = 1
```
````

~~~console
$ rfq predict --input-dim 10 \\
    --widths 20   # a comment
$ echo done
output line
~~~

```bash no-run
rfq demo
```

```
rfq list
```

```{eval-rst}
.. autofunction:: rfq_theory.predict
```
"""


def test_fenced_blocks_languages_lines_and_markers():
    blocks = fenced_blocks(PAGE)
    assert [b.language for b in blocks] == ["python", "bash", "markdown", "console", "bash", "", "{eval-rst}"]
    python, validate, markdown, console, demo, plain, rst = blocks
    assert python.line == 6 and python.text == "x = 1\n" and not python.skip
    assert validate.skip and validate.reason == "takes minutes"
    assert "not_code_of_this_page" in markdown.text  # a longer fence holds shorter ones
    assert console.line == 22 and not console.skip
    assert demo.skip and demo.reason == ""
    assert not plain.skip and not rst.skip


def test_shell_commands_join_continuations_drop_prompts_and_comments():
    console = fenced_blocks(PAGE)[3]
    steps = shell_commands(console)
    assert len(steps) == 1  # `echo` and output lines are not rfq commands
    assert steps[0].kind == "rfq" and steps[0].line == 22
    assert steps[0].args == ("predict", "--input-dim", "10", "--widths", "20")


def test_runnable_keeps_page_order_and_lists_skipped_blocks():
    steps, skipped = runnable(PAGE)
    assert [(s.kind, s.line) for s in steps] == [("python", 6), ("rfq", 22)]
    assert [b.line for b in skipped] == [12, 29]  # plain and directive fences are neither run nor listed


def _run(tmp_path, steps):
    results = tmp_path / "results.json"
    run(steps, "docs/page.md", str(results))
    return json.loads(results.read_text())


def test_runner_shares_one_namespace_and_reports_the_page_line_of_a_failure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = [
        {"kind": "python", "line": 5, "code": "x = 2\n"},
        {"kind": "python", "line": 10, "code": "y = x * 3\nassert y == 7, 'y is ' + str(y)\n"},
        {"kind": "python", "line": 20, "code": "z = 1\n"},
    ]
    results = _run(tmp_path, steps)
    assert [r["status"] for r in results] == ["ok", "failed"]  # the page stops at its first failure
    assert 'docs/page.md", line 11' in results[1]["error"] and "y is 6" in results[1]["error"]
    assert "docs_exec_runner" not in results[1]["error"]


@pytest.mark.slow  # rfq commands in subprocesses
def test_runner_runs_rfq_commands_and_reports_their_exit_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = [
        {"kind": "rfq", "line": 3, "args": ["list"]},
        {"kind": "rfq", "line": 4, "args": ["coefficients", "--activation", "no_such_activation"]},
    ]
    results = _run(tmp_path, steps)
    assert [r["status"] for r in results] == ["ok", "failed"]
    assert results[1]["error"].startswith("exit code 2") and "no_such_activation" in results[1]["error"]


def test_api_check_names_what_the_reference_misses():
    pytest.importorskip("sphinx")
    from api_check import undocumented

    documented = {"rfq_theory.predict", "rfq_theory.solver.SolverError", "other.DeepRF"}
    assert undocumented(["predict", "SolverError", "DeepRF"], documented) == ["DeepRF"]


def test_every_page_is_in_the_table_of_contents():
    index = (ROOT / "docs" / "index.md").read_text()
    listed = set(index.split())
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"index"}
    assert pages <= listed, sorted(pages - listed)
