"""Find the runnable examples of a Markdown page: ``python`` fences and ``rfq`` lines of shell fences.

Pure functions (no Sphinx), so that the rules can be tested on their own:

* a fence whose language is ``python`` (``py``, ``python3``) is one Python step;
* a fence whose language is ``bash``, ``console``, ``sh`` or ``shell`` gives one step per command
  line that starts with ``rfq `` (after an optional ``$ `` prompt), lines continued with ``\\``
  joined first, the arguments split with :func:`shlex.split` (``#`` comments dropped);
* a fence is skipped when its info string holds the word ``no-run`` (```` ```bash no-run ````) or
  when the last non-blank line before it is a comment ``<!-- docs: no-run ... -->``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"bash", "console", "sh", "shell"})
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
NO_RUN = re.compile(r"^\s*<!--\s*docs:\s*no-run\b(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, info words, first content line (1-based) and text."""

    language: str
    words: tuple[str, ...]
    line: int
    text: str
    skip: bool
    reason: str = ""


@dataclass(frozen=True)
class Step:
    """One thing to run: ``kind`` is ``"python"`` (``code``) or ``"rfq"`` (``args``), at ``line``."""

    kind: str
    line: int
    code: str = ""
    args: tuple[str, ...] = field(default_factory=tuple)


def fenced_blocks(source: str) -> list[Block]:
    """Every fenced code block of a Markdown text, with its skip marker."""
    lines = source.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        words = tuple(info.split())
        body = []
        j = i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            text = lines[j]
            body.append(text[indent:] if text[:indent].strip() == "" else text.lstrip())
            j += 1
        skip, reason = "no-run" in words[1:], ""
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NO_RUN.match(lines[k]) if k >= 0 else None
        if marker:
            skip, reason = True, marker["reason"].strip(" :-()")
        language = words[0].lower() if words else ""
        blocks.append(Block(language, words, i + 2, "\n".join(body) + "\n", skip, reason))
        i = j + 1
    return blocks


def shell_commands(block: Block) -> list[Step]:
    """The ``rfq`` command lines of a shell block, as argument lists (without the leading ``rfq``)."""
    steps = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        command = line.strip()
        if command.startswith("$ "):
            command = command[2:].lstrip()
        if command.startswith("rfq "):
            args = shlex.split(command, comments=True)
            steps.append(Step("rfq", block.line + start, args=tuple(args[1:])))
    return steps


def runnable(source: str) -> tuple[list[Step], list[Block]]:
    """The steps of a page in order, and the blocks that a marker skips (python and shell only)."""
    steps, skipped = [], []
    for block in fenced_blocks(source):
        if block.language not in PYTHON | SHELL:
            continue
        if block.skip:
            skipped.append(block)
        elif block.language in PYTHON:
            steps.append(Step("python", block.line, code=block.text))
        else:
            steps.extend(shell_commands(block))
    return steps, skipped
