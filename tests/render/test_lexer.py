"""The `.circ` highlighters: the Pygments lexer and the TextMate grammar agree with the
language's grammar, lex every shipped spec, and colour the HTML report's source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("pygments")
from pygments import lex
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Keyword, Name, Number, Operator

from circuitdsl.render.lexer import DECLARATIONS, CircLexer, grammar_keywords

ROOT = Path(__file__).resolve().parents[2]
TM = json.loads((ROOT / "editors" / "circ.tmLanguage.json").read_text(encoding="utf-8"))
SPECS = sorted((ROOT / "specs").rglob("*.circ"))


def tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in lex(text, CircLexer()) if v.strip()]


def test_lexer_classes() -> None:
    got = tokens("for a in early_curve { a -> curve[4] : excites at 45deg (z >= 1) }\n")
    kinds = dict((v, t) for t, v in got)
    assert kinds["for"] is Keyword.Declaration and kinds["in"] is Keyword.Declaration
    assert kinds["excites"] is Keyword and kinds["at"] is Keyword
    assert kinds["curve"] is Name.Variable  # a member reference, not the `curve` stimulus
    assert kinds["45deg"] is Number.Float and kinds["->"] is Operator
    unit = tokens("feature car = mixed4c:447\n")
    assert (Name.Variable, "mixed4c") in unit and (Number.Integer, "447") in unit
    # a keyword-like name used as a call or member is a name
    assert tokens("line(orientation = 90deg)")[0] == (Name.Function, "line")
    assert tokens("line[20] -> x : excites")[0] == (Name.Variable, "line")


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_lexes_without_errors(spec: Path) -> None:
    text = spec.read_text(encoding="utf-8")
    toks = list(lex(text, CircLexer()))
    assert not [v for t, v in toks if t is Error]
    assert "".join(v for _, v in toks).rstrip("\n") == text.rstrip("\n")  # nothing lost


def test_keywords_follow_the_grammar() -> None:
    words = set(grammar_keywords())
    assert {"excites", "inhibits", "feature", "family", "among", "predict"} <= words
    assert set(DECLARATIONS) <= words  # no declaration the grammar lacks


def test_textmate_grammar_has_the_same_keywords_and_valid_patterns() -> None:
    repo = TM["repository"]
    decl = re.fullmatch(r"\\b\(\?:(.*)\)\\b", repo["declaration"]["match"])
    claim = re.fullmatch(r"\\b\(\?:(.*)\)\\b", repo["claim"]["match"])
    assert decl and claim
    assert set(decl.group(1).split("|")) == set(DECLARATIONS)
    assert set(decl.group(1).split("|")) | set(claim.group(1).split("|")) == set(grammar_keywords())
    assert TM["scopeName"] == "source.circ" and TM["fileTypes"] == ["circ"]
    from circuitdsl.render.lexer import textmate_grammar

    # regenerate with `python -m circuitdsl.render.lexer > editors/circ.tmLanguage.json`
    assert textmate_grammar() == TM
    for name, rule in repo.items():  # Oniguruma patterns here are also Python regexes
        for key in ("match", "begin", "end"):
            if key in rule:
                assert re.compile(rule[key]), name
    included = {p["include"].lstrip("#") for p in TM["patterns"]}
    assert included == set(repo)
    vscode = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    grammar = vscode["contributes"]["grammars"][0]
    assert (ROOT / "editors" / "vscode" / grammar["path"]).resolve() == (
        ROOT / "editors" / "circ.tmLanguage.json"
    )


def test_registered_with_pygments_when_installed() -> None:
    from importlib.metadata import entry_points

    if not any(e.name == "circ" for e in entry_points(group="pygments.lexers")):
        pytest.skip("circuitdsl is not installed with its entry points (source checkout)")
    assert isinstance(get_lexer_by_name("circ"), CircLexer)
    assert isinstance(get_lexer_for_filename("x.circ"), CircLexer)


def test_html_source_view_is_coloured(tmp_path: Path) -> None:
    import circuitdsl
    from circuitdsl.render.html import to_html

    spec = circuitdsl.load(ROOT / "specs" / "curvenet" / "curve_circuit.circ")
    page = to_html(spec.circuit)
    source = page[page.index('<pre class="source">') :]
    assert '<span style="color:#8250df;font-weight:600">circuit</span>' in source
    assert '<span style="color:#cf222e">excites</span>' in source
    assert 'id="L14"' in source  # line anchors kept
