"""A Pygments lexer for `.circ` specs (optional: needs `pip install pygments`).

    pygmentize -l circ specs/curvenet/curve_circuit.circ      # via the entry point
    >>> from circuitdsl.render.lexer import CircLexer

The keyword list is read from the language's grammar (`grammar/circuit.lark`), so the
highlighter cannot drift from the parser: every quoted keyword terminal of the grammar
(`EXCITES: "excites"`) is a keyword here. Declarations (`circuit`, `feature`, `for`, ...)
are `Keyword.Declaration`, claim words (`excites`, `among`, ...) `Keyword`; a unit
`layer:channel` is a name and a number, `45deg` a number, `->` and `±` operators.
The editors/circ.tmLanguage.json grammar (VS Code, TextMate) draws the same classes.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from circuitdsl.language.syntax.parser import grammar_text

# Words that open a statement or bind names; every other grammar keyword states a claim.
DECLARATIONS = (
    "circuit",
    "cite",
    "model",
    "import",
    "from",
    "threshold",
    "feature",
    "family",
    "for",
    "in",
    "where",
    "expect",
    "predict",
)


@cache
def grammar_keywords() -> tuple[str, ...]:
    """Every keyword terminal of the grammar (`NAME: "word"`), longest first."""
    found = set(re.findall(r'^[A-Z_]+(?:\.\d+)?:\s*"([a-z_]+)"\s*$', grammar_text(), re.M))
    return tuple(sorted(found, key=lambda w: (-len(w), w)))


def claim_words() -> tuple[str, ...]:
    return tuple(w for w in grammar_keywords() if w not in DECLARATIONS)


class CircLexer(RegexLexer):  # type: ignore[misc]  # pygments has no type hints
    """Pygments lexer for circuitdsl specs."""

    name = "circuitdsl"
    aliases: ClassVar[list[str]] = ["circ", "circuitdsl"]
    filenames: ClassVar[list[str]] = ["*.circ"]
    mimetypes: ClassVar[list[str]] = ["text/x-circ"]

    tokens: ClassVar[dict[str, list[Any]]] = {
        "root": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"([^"\\\n]|\\.)*"', String.Double),
            # a name used as a member (`line[20]`) or a call (`curve(radius = 8)`), even
            # when it is spelt like a keyword: the grammar's lexer is contextual too
            (r"[A-Za-z_][A-Za-z0-9_]*(?=\[)", Name.Variable),
            (r"[A-Za-z_][A-Za-z0-9_]*(?=\()", Name.Function),
            (words(DECLARATIONS, suffix=r"\b"), Keyword.Declaration),
            (words(claim_words(), suffix=r"\b"), Keyword),
            # a unit: layer:channel (dotted layer names included)
            (
                r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(:)(\d+)",
                bygroups(Name.Variable, Punctuation, Number.Integer),
            ),
            (r"\d+(\.\d+)?(deg\b|°)", Number.Float),
            (r"\d+\.\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r"->|±|\+-|>=|<=|==|!=|[<>+\-*/=]|\.\.", Operator),
            (r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*", Name),
            (r"[()\[\]{},:]", Punctuation),
            (r".", Text),
        ]
    }
