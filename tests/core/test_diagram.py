"""The README's state diagram is the one rendered from the transition table.

After changing the table, regenerate the README block with
``python -c "from mcpconn._core.diagram import render; print(render(), end='')"``.
"""

from __future__ import annotations

import pathlib

from mcpconn._core.diagram import render
from mcpconn._core.machine import TRANSITIONS
from mcpconn._core.states import Input, Phase

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- state-diagram:begin -->\n```text\n", "```\n<!-- state-diagram:end -->"


def test_the_readme_shows_the_rendered_table() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert shown == render()


def test_the_rendering_lists_every_rule_of_the_table() -> None:
    text = render()
    for phase in Phase:
        assert f"{phase.name}  [{phase.state.name}]" in text
    moves = sum(
        1
        for (phase, _), (effect, to) in TRANSITIONS.items()
        if not (effect is None and to == (phase,))
    )
    assert text.count(" -> ") == moves


def test_a_changed_table_changes_the_rendering() -> None:
    table = dict(TRANSITIONS)
    del table[(Phase.FAILED, Input.CLOSE_REQUESTED)]
    assert render(table) != render()
