"""The state diagram, rendered from the transition table (the README shows this text).

A drawing kept by hand drifts from the code; this one cannot: a test compares
the README's diagram with `render()`. Regenerate it with
``python -c "from mcpconn._core.diagram import render; print(render(), end='')"``.
"""

from __future__ import annotations

from .states import Input, Phase
from .transitions import TRANSITIONS, Rule

__all__ = ["render"]


def render(table: dict[tuple[Phase, Input], Rule] | None = None) -> str:
    """One block per phase: its public state, where each input leads, what it ignores.

    ``A | B`` lists the destinations an input may lead to (the first is the usual
    one; the policy picks: back off or give up, retry or park).
    """
    table = TRANSITIONS if table is None else table
    width = max(len(i.name) for i in Input)
    blocks = []
    for phase in Phase:
        lines = [f"{phase.name}  [{phase.state.name}]"]
        ignored = []
        for inp in Input:
            rule = table.get((phase, inp))
            if rule is None:
                continue
            effect, destinations = rule
            if effect is None and destinations == (phase,):
                ignored.append(inp.name)
                continue
            lines.append(f"  {inp.name:<{width}} -> {' | '.join(d.name for d in destinations)}")
        if ignored:
            lines.append(_wrap("  ignores: ", ignored))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _wrap(prefix: str, names: list[str], limit: int = 88) -> str:
    lines, line = [], prefix
    for name in names:
        piece = name if line == prefix else f", {name}"
        if len(line) + len(piece) > limit:
            lines.append(line + ",")
            line = " " * len(prefix) + name
        else:
            line += piece
    lines.append(line)
    return "\n".join(lines)
