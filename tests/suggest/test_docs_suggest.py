"""docs/suggest.md stays true: its example session is what the planted CNN produces."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from planted_nets import FACTORY, UNIT

from circuitdsl.tools.inputs import analyse
from circuitdsl.tools.suggest import command_line, suggest

DOC = Path(__file__).parents[2] / "docs" / "suggest.md"


def test_example_draft_is_real_output(planted_adapter: Any) -> None:
    text = DOC.read_text()
    (example,) = re.findall(r"```circ\n(.*?)```", text, flags=re.S)
    command = command_line(
        FACTORY,
        f"relu3:{UNIT}",
        source=None,
        top=2,
        depth=1,
        weights="planted.pt",
        output="draft.circ",
    )
    draft = suggest(planted_adapter, "relu3", UNIT, top=2, model=FACTORY, command=command)
    assert draft.text == example


def test_example_inputs_table_is_real_output(planted_adapter: Any) -> None:
    text = DOC.read_text()
    session = text[text.index("$ circ inputs") :]
    session = session[session.index("\n") + 1 : session.index("\n$ circ suggest")]
    rep = analyse(planted_adapter, "relu3", UNIT, top=2)
    rep.weights = "planted.pt"
    assert rep.to_text() == session
