"""The shell blocks of the shipping docs, by id, so that tests run what the docs tell users.

In docs/install.md, docs/operating.md and docs/troubleshooting.md every ```sh block follows a
marker naming it and saying where it is exercised::

    <!-- test: kind-quickstart (kind) -->
    ```sh
    kind create cluster --name stepstone
    ```

`(substrate)` blocks run in tests/integration/test_chart_install.py on the local control plane,
`(kind)` blocks in the kind suite (they need Docker or a real cluster), `(readme)` blocks (the
README's) in tests/integration/test_readme.py. tests/unit/
test_chart_docs.py checks that every block has a marker and that a test runs each id.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.substrate.tools import REPO

DOCS = (
    REPO / "README.md",
    *(REPO / "docs" / name for name in ("install.md", "operating.md", "troubleshooting.md")),
)
WHERE = ("substrate", "kind", "readme")

_BLOCK = re.compile(
    r"<!-- test: (?P<id>[a-z0-9-]+) \((?P<where>[a-z]+)\) -->\n```sh\n(?P<body>.*?)```", re.S
)
_ANY_SH = re.compile(r"^```sh$", re.M)


@dataclass(frozen=True)
class Block:
    id: str
    where: str
    doc: Path
    body: str

    def commands(self) -> list[str]:
        """One string per command: continuation lines joined, trailing `  # notes` dropped."""
        joined = re.sub(r"\s*\\\n\s*", " ", self.body)
        lines = (re.split(r"\s{2,}# ", line)[0].strip() for line in joined.splitlines())
        return [line for line in lines if line and not line.startswith("#")]


def blocks() -> dict[str, Block]:
    found: dict[str, Block] = {}
    for doc in DOCS:
        text = doc.read_text()
        for m in _BLOCK.finditer(text):
            if m["id"] in found:
                raise ValueError(f"docs block id {m['id']!r} twice ({found[m['id']].doc}, {doc})")
            found[m["id"]] = Block(m["id"], m["where"], doc, m["body"])
    return found


def unmarked(doc: Path) -> int:
    """How many ```sh blocks of `doc` lack a marker."""
    text = doc.read_text()
    return len(_ANY_SH.findall(text)) - len(_BLOCK.findall(text))


class DocCommandError(AssertionError):
    """A command of a docs block failed; the message shows the block, command and output."""


def run(
    block_id: str,
    *,
    env: Mapping[str, str],
    replace: Mapping[str, str] | None = None,
    helm_args: Sequence[str] = (),
    cwd: Path = REPO,
    timeout: float = 300.0,
) -> list[subprocess.CompletedProcess[str]]:
    """Run a block's commands with bash (in the repository root unless `cwd` says otherwise, as
    a user in their checkout would), stopping at the first failure.

    `replace`: literal substitutions (a placeholder URL for a real one). `helm_args`: appended
    to every `helm install|upgrade` command, for what differs where the test runs (image tags,
    ports); they come last, so they win over the docs' own `--set`s.
    """
    block = blocks()[block_id]
    results = []
    for written in block.commands():
        command = written
        for old, new in (replace or {}).items():
            command = command.replace(old, new)
        words = command.split()
        if words[:1] == ["helm"] and words[1:2] in (["install"], ["upgrade"]):
            command = " ".join([command, *map(shlex.quote, helm_args)])
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise DocCommandError(
                f"{block.doc.name} block {block_id!r}: `{command}` exited {result.returncode}\n"
                f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
            )
        results.append(result)
    return results


def run_script(
    block_id: str,
    *,
    env: Mapping[str, str],
    replace: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    """Run a block as one bash script, as a user pasting it into a shell would: an `export`
    carries over to the next line. Stops at the first failing command."""
    block = blocks()[block_id]
    script = block.body
    for old, new in (replace or {}).items():
        script = script.replace(old, new)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise DocCommandError(
            f"{block.doc.name} block {block_id!r} exited {result.returncode}\n"
            f"stdout: {result.stdout[-4000:]}\nstderr: {result.stderr[-4000:]}"
        )
    return result


def same_commands(block_id: str, ran_as: str) -> None:
    """`block_id` repeats commands of `ran_as` (which a suite runs): each of its commands
    appears there, in the same order, so running `ran_as` exercises them."""
    mine = blocks()[block_id].commands()
    theirs = iter(blocks()[ran_as].commands())
    for command in mine:
        if command not in theirs:
            raise AssertionError(f"{block_id!r}: `{command}` is not in {ran_as!r} (in order)")
