"""Doc blocks that repeat another block the kind suite runs (no Docker needed to check)."""

from __future__ import annotations

from tests.e2e import docblocks


def test_the_readme_kind_quickstart_is_the_install_guides() -> None:
    docblocks.same_commands("readme-kind", "kind-quickstart")
