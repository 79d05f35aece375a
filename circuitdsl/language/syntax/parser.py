"""Parse: .circ text -> `ast.Spec`, or a `DiagnosticError` with compiler-grade messages.

The grammar is `grammar/circuit.lark` (shipped in the wheel as
`circuitdsl/grammar/circuit.lark`). Lark errors are caught in exactly one place,
`parse`, and turned into diagnostics with curated messages for the common mistakes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import math
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from circuitdsl.language import diagnostics as d
from circuitdsl.language.cachedir import cache_dir
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span
from circuitdsl.language.syntax import ast


def grammar_text() -> str:
    """The grammar: from the installed package, or from the source checkout."""
    packaged = resources.files("circuitdsl").joinpath("grammar/circuit.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).parents[3] / "grammar" / "circuit.lark").read_text(encoding="utf-8")


_COMMENT_SINK: list[Token] = []


def build_lark(*, strict: bool = False, cache: bool | str = False) -> Lark:
    """A Lark LALR parser for the grammar.

    `strict=True` makes Lark prove that no two terminals collide (it needs `interegular`
    and costs about 0.65 s), so it runs in the test suite (tests/syntax), not at every
    start. `cache` is Lark's parser cache: a file path, or False.
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        strict=strict,
        cache=cache,
        propagate_positions=False,  # `_Builder.transform` computes the positions
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _COMMENT_SINK.append},
    )


def _cache_file() -> str | bool:
    """Where Lark keeps the built parser tables between processes, or False if nowhere.

    Lark keys the file on a hash of the grammar and options and rebuilds (and rewrites)
    it when they change or the file is unreadable, so a stale or damaged cache costs one
    rebuild, never a wrong parse. Building takes about 0.5 s; loading, about 30 ms.
    """
    import os

    import lark

    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(root, os.W_OK):
        return False
    return str(root / f"grammar-lark{lark.__version__}.cache")


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return build_lark(cache=_cache_file())


@functools.lru_cache(maxsize=1)
def keywords() -> dict[str, str]:
    """Terminal name -> keyword text, for every keyword of the language."""
    out = {}
    for term in _lark().terminals:
        pattern = term.pattern
        if pattern.type == "str" and pattern.value.isalpha():
            out[term.name] = pattern.value
    return out


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while building a tree (or an IR).

    A parse allocates a few hundred thousand objects and frees none of them, so
    every collection finds nothing, and the full collections scan the whole
    growing heap: with the collector on, parse time per line grew with the size
    of the spec (74 -> 143 -> 207 us/line at 1k, 10k, 50k lines).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse(source: str, path: str = "<string>") -> ast.Spec:
    """Parse one file's text. Raises `DiagnosticError` on the first syntax error.

    A leading byte-order mark (U+FEFF, which some editors write) is not part of the spec.
    """
    source = source.removeprefix("\ufeff")
    if not source.strip():
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_EMPTY,
                    "the spec is empty",
                    Span(path, 1, 1, 1, 1),
                    help='start with `circuit NAME "description"`; see docs/language.md',
                )
            ]
        )
    # The parser is built once and shared, so the comment callback writes to a
    # module-level sink that each parse resets; `fmt` needs the comments.
    del _COMMENT_SINK[:]
    with gc_paused():
        try:
            tree = _lark().parse(source)
        except UnexpectedInput as err:
            raise DiagnosticError([_syntax_diagnostic(err, source, path)]) from None
        comments = [ast.Comment(str(t), t.line or 0, t.column or 0) for t in _COMMENT_SINK]
        statements = _Builder(path).transform(tree)
    if not statements:
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_EMPTY,
                    "the spec contains only comments",
                    Span(path, 1, 1, 1, 1),
                    help="add a `circuit NAME` line and some features and claims",
                )
            ]
        )
    return ast.Spec(path, source, tuple(statements), tuple(comments))


# ---- the tree -> AST transformer -----------------------------------------------


def _span_of(path: str, meta: Meta | Token) -> Span:
    return Span(path, meta.line, meta.column, meta.end_line, meta.end_column)  # type: ignore[arg-type]


def _literal(path: str, token: Token, negative: bool = False) -> ast.Literal:
    text = str(token)
    span = _span_of(path, token)
    sign = -1.0 if negative else 1.0
    if token.type == "ANGLE":
        number = text.removesuffix("deg").removesuffix("°")
        value = _finite(sign * float(number), text, span)
        return ast.Literal(value, "angle", span, ("-" if negative else "") + text)
    if token.type == "NUMBER":
        value = _finite(sign * float(text), text, span)
        return ast.Literal(value, "number", span, ("-" if negative else "") + text)
    return ast.Literal(_unquote(text), "string", span, text)


def _finite(value: float, text: str, span: Span) -> float:
    """A number too large for a float (a 400-digit `top K`) is E108, not `inf`.

    Left as `inf`, it crashes `int()` later or is written as `Infinity`, which is not JSON.
    """
    if math.isfinite(value):
        return value
    shown = text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} characters)"
    raise DiagnosticError(
        [
            Diagnostic(
                d.E_BAD_VALUE,
                f"the number `{shown}` is too large",
                span,
                help="numbers in a spec must be below about 1.8e308",
            )
        ]
    )


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body.replace('\\"', '"').replace("\\\\", "\\")


def _without_keywords(children: list[Any]) -> list[Any]:
    """Drop punctuation and keyword tokens; keep names, literals and subtrees."""
    keep = {"NAME", "DOTTED", "NUMBER", "ANGLE", "STRING", "COMPARE"}
    return [c for c in children if not isinstance(c, Token) or c.type in keep]


class _Pos:
    """Where a subtree's text lies: its first token's start to its last token's end.

    The same line/column fields as `lark.tree.Meta` under `propagate_positions`,
    computed during the tree walk instead of by a wrapper around every rule.
    """

    __slots__ = ("column", "end_column", "end_line", "line")

    def __init__(self, line: int, column: int, end_line: int, end_column: int) -> None:
        self.line = line
        self.column = column
        self.end_line = end_line
        self.end_column = end_column


class _Builder:
    """Builds AST nodes only; every check waits for resolve.

    Each method named after a rule (or alias) of the grammar takes the node's
    position (`meta`: line, column, end_line, end_column) and its already-built
    children, as a `lark.Transformer` under `v_args(meta=True)` would. `transform`
    walks the tree itself and computes the positions on the way, which is several
    times cheaper than Lark's Transformer (it re-wraps the method on every node)
    and its `propagate_positions` (a wrapper around every rule of the parse).
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def transform(self, tree: Tree) -> Any:  # type: ignore[type-arg]
        return self._walk(tree)[0]

    def _walk(self, tree: Tree) -> tuple[Any, _Pos | None]:  # type: ignore[type-arg]
        children: list[Any] = []
        first: Token | _Pos | None = None
        last: Token | _Pos | None = None
        for child in tree.children:
            if isinstance(child, Tree):
                value, pos = self._walk(child)
                children.append(value)
                if pos is not None:
                    if first is None:
                        first = pos
                    last = pos
            else:
                children.append(child)
                if first is None:
                    first = child
                last = child
        pos = None
        if first is not None and last is not None:
            pos = _Pos(first.line, first.column, last.end_line, last.end_column)  # type: ignore[arg-type]
        build = _BUILDERS.get(tree.data)
        if build is None:  # no method: keep the subtree, as Transformer.__default__ does
            return Tree(tree.data, children, tree.meta), pos
        return build(self, pos, children), pos

    def _span(self, meta: Meta) -> Span:
        return _span_of(self.path, meta)

    def _name(self, token: Token) -> ast.Name:
        return ast.Name(str(token), _span_of(self.path, token))

    def _trailer(self, rest: list[Any]) -> tuple[tuple[ast.ThresholdOption, ...], ast.Name | None]:
        options: tuple[ast.ThresholdOption, ...] = ()
        claim_id = None
        for item in rest:
            if isinstance(item, tuple):
                options = item
            elif isinstance(item, ast.Name):
                claim_id = item
        return options, claim_id

    # statements
    def start(self, meta: Meta, children: list[Any]) -> list[Any]:
        return children

    def circuit_decl(self, meta: Meta, ch: list[Any]) -> ast.CircuitDecl:
        ch = _without_keywords(ch)
        desc = _unquote(str(ch[1])) if len(ch) > 1 else None
        return ast.CircuitDecl(self._name(ch[0]), desc, self._span(meta))

    def cite_decl(self, meta: Meta, ch: list[Any]) -> ast.CiteDecl:
        return ast.CiteDecl(_unquote(str(_without_keywords(ch)[0])), self._span(meta))

    def model_decl(self, meta: Meta, ch: list[Any]) -> ast.ModelDecl:
        ch = _without_keywords(ch)
        pre = self._name(ch[1]) if len(ch) > 1 else None
        return ast.ModelDecl(ch[0], self._span(meta), pre)

    def model_name(self, meta: Meta, ch: list[Any]) -> str:
        return "".join(str(c) for c in ch)

    def model_string(self, meta: Meta, ch: list[Any]) -> str:
        return _unquote(str(ch[0]))

    def import_all(self, meta: Meta, ch: list[Any]) -> ast.ImportDecl:
        return ast.ImportDecl(_unquote(str(_without_keywords(ch)[0])), None, self._span(meta))

    def import_names(self, meta: Meta, ch: list[Any]) -> ast.ImportDecl:
        ch = _without_keywords(ch)
        names = tuple(self._name(t) for t in ch[1:])
        return ast.ImportDecl(_unquote(str(ch[0])), names, self._span(meta))

    def threshold_decl(self, meta: Meta, ch: list[Any]) -> ast.ThresholdDecl:
        ch = _without_keywords(ch)
        return ast.ThresholdDecl(self._name(ch[0]), ch[1], self._span(meta))

    def alpha_decl(self, meta: Meta, ch: list[Any]) -> ast.AlphaDecl:
        return ast.AlphaDecl(ch[-1], self._span(meta))

    def alpha_clause(self, meta: Meta, ch: list[Any]) -> ast.AlphaDecl:
        return ast.AlphaDecl(ch[-1], self._span(meta))

    def threshold(self, meta: Meta, ch: list[Any]) -> ast.ThresholdOption:
        stat, op, value = ch
        return ast.ThresholdOption(self._name(stat), str(op), value, self._span(meta))

    def options(self, meta: Meta, ch: list[Any]) -> tuple[ast.ThresholdOption, ...]:
        return tuple(c for c in ch if isinstance(c, ast.ThresholdOption))

    def claim_id(self, meta: Meta, ch: list[Any]) -> ast.Name:
        return self._name(ch[-1])

    def signed_number(self, meta: Meta, ch: list[Any]) -> ast.Literal:
        lit = _literal(self.path, ch[-1], negative=len(ch) == 2)
        return ast.Literal(lit.value, lit.unit, self._span(meta), lit.raw)

    def number(self, meta: Meta, ch: list[Any]) -> ast.Literal:
        return _literal(self.path, ch[0])

    def literal(self, meta: Meta, ch: list[Any]) -> ast.Literal:
        return _literal(self.path, ch[0])

    # features and families
    def feature_decl(self, meta: Meta, ch: list[Any]) -> ast.FeatureDecl:
        name = self._name(ch[1])
        terms = ch[3]
        label = _unquote(str(ch[4])) if len(ch) > 4 else None
        return ast.FeatureDecl(name, terms, label, self._span(meta))

    def feature_select(self, meta: Meta, ch: list[Any]) -> ast.FeatureDecl:
        select = ch[3]
        label = _unquote(str(ch[4])) if len(ch) > 4 else None
        return ast.FeatureDecl(self._name(ch[1]), (), label, self._span(meta), select)

    def family_select(self, meta: Meta, ch: list[Any]) -> ast.FamilyDecl:
        params: tuple[ast.ParamDecl, ...] = ()
        label = None
        select = None
        for item in ch[2:]:
            if isinstance(item, tuple) and item and isinstance(item[0], ast.ParamDecl):
                params = item
            elif isinstance(item, ast.Selector):
                select = item
            elif isinstance(item, Token) and item.type == "STRING":
                label = _unquote(str(item))
        assert select is not None
        return ast.FamilyDecl(
            self._name(ch[1]), params, select.layer, label, (), self._span(meta), select
        )

    def selector(self, meta: Meta, ch: list[Any]) -> ast.Selector:
        count = _literal(self.path, ch[1])
        layer = next(c for c in ch if isinstance(c, ast.Name))
        stimulus = next(c for c in ch if isinstance(c, ast.Stimulus))
        over = self._name(ch[-1]) if isinstance(ch[-1], Token) and ch[-1].type == "NAME" else None
        return ast.Selector(count, layer, stimulus, over, self._span(meta))

    def combination(self, meta: Meta, ch: list[Any]) -> tuple[ast.ChannelTerm, ...]:
        terms: list[ast.ChannelTerm] = []
        negate = False
        for item in ch:
            if isinstance(item, str):
                negate = item == "-"
            else:
                coefficient, layer, channel, span = item
                terms.append(ast.ChannelTerm(coefficient, negate, layer, channel, span))
        return tuple(terms)

    def sign_op(self, meta: Meta, ch: list[Any]) -> str:
        return str(ch[0])

    def term(self, meta: Meta, ch: list[Any]) -> tuple[Any, ...]:
        coefficient = ch[0] if len(ch) == 3 else None
        layer, channel = ch[-1]
        return (coefficient, layer, channel, self._span(meta))

    def channel_ref(self, meta: Meta, ch: list[Any]) -> tuple[ast.Name, ast.Literal]:
        return ch[0], _literal(self.path, ch[2])

    def layer(self, meta: Meta, ch: list[Any]) -> ast.Name:
        return self._name(ch[0])

    def family_decl(self, meta: Meta, ch: list[Any]) -> ast.FamilyDecl:
        name = self._name(ch[1])
        params: tuple[ast.ParamDecl, ...] = ()
        label = None
        layer = None
        members: tuple[ast.Member, ...] = ()
        for item in ch[2:]:
            if isinstance(item, tuple) and item and isinstance(item[0], ast.ParamDecl):
                params = item
            elif isinstance(item, ast.Name):
                layer = item
            elif isinstance(item, Token) and item.type == "STRING":
                label = _unquote(str(item))
            elif isinstance(item, list):
                members = tuple(item)
        assert layer is not None
        return ast.FamilyDecl(name, params, layer, label, members, self._span(meta))

    def param_list(self, meta: Meta, ch: list[Any]) -> tuple[ast.ParamDecl, ...]:
        return tuple(c for c in ch if isinstance(c, ast.ParamDecl))

    def param_decl(self, meta: Meta, ch: list[Any]) -> ast.ParamDecl:
        return ast.ParamDecl(self._name(ch[0]), self._name(ch[2]), self._span(meta))

    def members(self, meta: Meta, ch: list[Any]) -> list[ast.Member]:
        return [c for c in ch if isinstance(c, ast.Member)]

    def member(self, meta: Meta, ch: list[Any]) -> ast.Member:
        values = ch[2] if len(ch) > 2 else ()
        return ast.Member(_literal(self.path, ch[0]), values, self._span(meta))

    def value_tuple(self, meta: Meta, ch: list[Any]) -> tuple[ast.Literal, ...]:
        return tuple(c for c in ch if isinstance(c, ast.Literal))

    def string_value(self, meta: Meta, ch: list[Any]) -> ast.Literal:
        return _literal(self.path, ch[0])

    def label_value(self, meta: Meta, ch: list[Any]) -> ast.Literal:
        return ast.Literal(str(ch[0]), "string", _span_of(self.path, ch[0]), str(ch[0]))

    # claims
    def claim_stmt(self, meta: Meta, ch: list[Any]) -> ast.ClaimStmt:
        sources, union = ch[0]
        target = ch[2]
        items = tuple(c for c in ch[4:] if isinstance(c, ast.ClaimItem))
        alpha = ch.pop().value if isinstance(ch[-1], ast.AlphaDecl) else None
        where = ch[-1][0] if isinstance(ch[-1], list) else None
        return ast.ClaimStmt(sources, union, target, items, where, self._span(meta), alpha)

    def compare_stmt(self, meta: Meta, ch: list[Any]) -> ast.CompareStmt:
        a = ch[0][0][0]
        c = ch[2]
        measure = ch[3]
        b = ch[4][0][0]
        d_ = ch[6]
        options, claim_id = self._trailer(ch[7:])
        grouped = ch[0][1] or ch[4][1]
        return ast.CompareStmt(
            (a, c), (b, d_), options, claim_id, grouped, self._span(meta), measure
        )

    def comparison_word(self, meta: Meta, ch: list[Any]) -> str:
        first = ch[0]
        if isinstance(first, str) and not isinstance(first, Token):
            return first  # a sign: `excites more than`
        return {"STRONGER": "norm", "SIMILAR": "similar", "OPPOSITE": "opposite"}[first.type]

    def sources(self, meta: Meta, ch: list[Any]) -> tuple[tuple[ast.Ref, ...], bool]:
        refs = tuple(c for c in ch if isinstance(c, ast.Ref))
        return refs, any(isinstance(c, Token) and c.type == "LBRACE" for c in ch)

    def ref(self, meta: Meta, ch: list[Any]) -> ast.Ref:
        return ast.Ref(self._name(ch[0]), None, self._span(meta))

    def member_ref(self, meta: Meta, ch: list[Any]) -> ast.Ref:
        return ast.Ref(self._name(ch[0]), _literal(self.path, ch[2]), self._span(meta))

    def where_clause(self, meta: Meta, ch: list[Any]) -> list[Any]:
        return [ch[1]]

    def claim_item(self, meta: Meta, ch: list[Any]) -> ast.ClaimItem:
        options, claim_id = self._trailer(ch[1:])
        return ast.ClaimItem(ch[0], options, claim_id, self._span(meta))

    def sign(self, meta: Meta, ch: list[Any]) -> str:
        return str(ch[0])

    polarity = part = shape = sign

    def sign_claim(self, meta: Meta, ch: list[Any]) -> ast.SignBody:
        return ast.SignBody(ch[0], self._span(meta))

    def region_claim(self, meta: Meta, ch: list[Any]) -> ast.RegionBody:
        return ast.RegionBody(ch[0], ch[2], self._span(meta))

    def strongest_claim(self, meta: Meta, ch: list[Any]) -> ast.StrongestBody:
        sign = "inhibits" if any(str(c) == "inhibition" for c in ch[1:-1]) else "excites"
        return ast.StrongestBody(ch[-1], self._span(meta), sign)

    def strongest_sign(self, meta: Meta, ch: list[Any]) -> str:
        return str(ch[0])

    def setting(self, meta: Meta, ch: list[Any]) -> ast.ThresholdOption:
        stat, _, value = ch
        return ast.ThresholdOption(self._name(stat), "=", value, self._span(meta))

    def rank_claim(self, meta: Meta, ch: list[Any]) -> ast.RankBody:
        k = _literal(self.path, ch[2])
        polarity = ch[3] if isinstance(ch[3], str) and not isinstance(ch[3], Token) else "any"
        return ast.RankBody(k, polarity, self._span(meta))

    def shape_claim(self, meta: Meta, ch: list[Any]) -> ast.ShapeBody:
        return ast.ShapeBody(ch[0], ch[2], ch[3], self._span(meta))

    def equivariance_claim(self, meta: Meta, ch: list[Any]) -> ast.EquivarianceBody:
        period = ch[7] if len(ch) > 7 else None
        return ast.EquivarianceBody(self._name(ch[2]), self._name(ch[4]), period, self._span(meta))

    def named_region(self, meta: Meta, ch: list[Any]) -> ast.Region:
        return ast.Region(self._name(ch[0]), None, None, self._span(meta))

    def explicit_region(self, meta: Meta, ch: list[Any]) -> ast.Region:
        ranges = [c for c in ch if isinstance(c, tuple)]
        return ast.Region(None, ranges[0], ranges[1] if len(ranges) > 1 else None, self._span(meta))

    def span_range(self, meta: Meta, ch: list[Any]) -> tuple[ast.Literal, ast.Literal]:
        return _literal(self.path, ch[0]), _literal(self.path, ch[2])

    def within_stmt(self, meta: Meta, ch: list[Any]) -> ast.WithinStmt:
        negated = isinstance(ch[0], Token) and ch[0].type == "NOT"
        ch = ch[1:] if negated else ch
        options, claim_id = self._trailer(ch[3:])
        return ast.WithinStmt(ch[0], ch[2], options, claim_id, self._span(meta), negated)

    def banding_stmt(self, meta: Meta, ch: list[Any]) -> ast.BandingStmt:
        negated = any(isinstance(c, Token) and c.type == "NOT" for c in ch)
        ch = [c for c in ch if not (isinstance(c, Token) and c.type == "NOT")]
        than = None
        rest = ch[6:]
        if len(ch) > 6 and isinstance(ch[6], Token) and ch[6].type == "MORE":
            than = self._name(ch[8])
            rest = ch[9:]
        options, claim_id = self._trailer(rest)
        return ast.BandingStmt(
            ch[2], self._name(ch[5]), options, claim_id, self._span(meta), negated, than
        )

    def proportion_stmt(self, meta: Meta, ch: list[Any]) -> ast.ProportionStmt:
        # MOST OF THE TOP k INPUTS OF ref FROM layer sign options? claim_id?
        options, claim_id = self._trailer(ch[11:])
        k = _literal(self.path, ch[4])
        return ast.ProportionStmt(k, ch[7], ch[9], ch[10], options, claim_id, self._span(meta))

    def proportion_sign(self, meta: Meta, ch: list[Any]) -> str:
        return str(ch[0])

    def for_stmt(self, meta: Meta, ch: list[Any]) -> ast.ForStmt:
        bindings = tuple(c for c in ch if isinstance(c, ast.Binding))
        where = next((c[0] for c in ch if isinstance(c, list)), None)
        body_start = next(
            i for i, c in enumerate(ch) if isinstance(c, Token) and c.type == "LBRACE"
        )
        body = tuple(c for c in ch[body_start + 1 : -1])
        alpha = next((c.value for c in ch[:body_start] if isinstance(c, ast.AlphaDecl)), None)
        return ast.ForStmt(bindings, where, body, self._span(meta), alpha)

    def binding(self, meta: Meta, ch: list[Any]) -> ast.Binding:
        return ast.Binding(self._name(ch[0]), self._name(ch[2]), self._span(meta))

    # activation claims and predictions
    def expect_stmt(self, meta: Meta, ch: list[Any]) -> ast.ExpectStmt:
        activation, rest = self._read(ch[2:])
        options, claim_id = self._trailer(rest)
        return ast.ExpectStmt(ch[1], activation, options, claim_id, self._span(meta))

    def covers_stmt(self, meta: Meta, ch: list[Any]) -> ast.ExpectStmt:
        # EXPECT ref COVERS NAME IN width BINS (ON stimulus)? options? claim_id?
        stimulus = ch[8] if len(ch) > 8 and isinstance(ch[8], ast.Stimulus) else None
        rest = ch[9:] if stimulus is not None else ch[7:]
        options, claim_id = self._trailer(rest)
        span = self._span(meta)
        act = ast.Activation("covers", stimulus, self._name(ch[3]), ch[5], None, span)
        return ast.ExpectStmt(ch[1], act, options, claim_id, span)

    def reading(self, meta: Meta, ch: list[Any]) -> str:
        return "pre"

    @staticmethod
    def _read(ch: list[Any]) -> tuple[ast.Activation, list[Any]]:
        """The activation (with its reading, when `pre` precedes it) and what follows."""
        if ch and ch[0] == "pre":
            return dataclasses.replace(ch[1], read="pre"), ch[2:]
        return ch[0], ch[1:]

    def predict_stmt(self, meta: Meta, ch: list[Any]) -> ast.PredictStmt:
        edits = tuple(c for c in ch if isinstance(c, ast.Edit))
        colon = next(i for i, c in enumerate(ch) if isinstance(c, Token) and c.type == "COLON")
        subject = ch[colon + 1]
        activation, rest = self._read(ch[colon + 2 :])
        (change, size), rest = rest[0], rest[1:]
        options, claim_id = self._trailer(rest)
        return ast.PredictStmt(
            edits, subject, activation, change, options, claim_id, self._span(meta), size
        )

    # the predicted change and its size: (direction, ChangeSize | None)
    def _change(self, meta: Meta, ch: list[Any], kind: str) -> tuple[str, ast.ChangeSize | None]:
        value = next((c for c in ch if isinstance(c, ast.Literal)), None)
        if value is None:
            number = next((c for c in ch if isinstance(c, Token) and c.type == "NUMBER"), None)
            value = _literal(self.path, number) if number is not None else None
        size = ast.ChangeSize(kind, value, self._span(meta)) if value is not None else None
        return str(ch[0]), size

    def change_increases(self, meta: Meta, ch: list[Any]) -> tuple[str, ast.ChangeSize | None]:
        return self._change(meta, ch, "by_at_least")

    change_decreases = change_increases

    def change_increases_to(self, meta: Meta, ch: list[Any]) -> tuple[str, ast.ChangeSize | None]:
        return self._change(meta, ch, "to_above")

    def change_decreases_to(self, meta: Meta, ch: list[Any]) -> tuple[str, ast.ChangeSize | None]:
        return self._change(meta, ch, "to_below")

    def change_unchanged(self, meta: Meta, ch: list[Any]) -> tuple[str, ast.ChangeSize | None]:
        return self._change(meta, ch, "within")

    def percent(self, meta: Meta, ch: list[Any]) -> ast.Literal:
        lit = _literal(self.path, ch[0])
        return ast.Literal(lit.value, "%", self._span(meta), lit.raw + "%")

    def responds(self, meta: Meta, ch: list[Any]) -> ast.Activation:
        return ast.Activation("responds", ch[2], None, None, None, self._span(meta))

    def prefers(self, meta: Meta, ch: list[Any]) -> ast.Activation:
        return ast.Activation("prefers", ch[6], self._name(ch[1]), ch[2], ch[4], self._span(meta))

    def no_echo(self, meta: Meta, ch: list[Any]) -> ast.Activation:
        return ast.Activation("no_echo", ch[3], None, None, None, self._span(meta))

    def invariant(self, meta: Meta, ch: list[Any]) -> ast.Activation:
        return ast.Activation("invariant", ch[4], self._name(ch[2]), None, None, self._span(meta))

    def stimulus(self, meta: Meta, ch: list[Any]) -> ast.Stimulus:
        kwargs = tuple(c for c in ch if isinstance(c, tuple))
        return ast.Stimulus(self._name(ch[0]), kwargs, self._span(meta))

    def kwarg(self, meta: Meta, ch: list[Any]) -> tuple[ast.Name, ast.Expr]:
        return self._name(ch[0]), ch[2]

    def ablate_edit(self, meta: Meta, ch: list[Any]) -> ast.Edit:
        return ast.Edit("ablate", ch[1], None, "all", None, self._span(meta))

    def _edge_edit(self, kind: str, meta: Meta, ch: list[Any]) -> ast.Edit:
        part = ch[1] if isinstance(ch[1], str) and not isinstance(ch[1], Token) else "all"
        refs = [c for c in ch if isinstance(c, ast.Ref)]
        factor = ch[-1] if kind == "scale" else None
        return ast.Edit(kind, None, (refs[0], refs[1]), part, factor, self._span(meta))

    def remove_edit(self, meta: Meta, ch: list[Any]) -> ast.Edit:
        return self._edge_edit("remove", meta, ch)

    def scale_edit(self, meta: Meta, ch: list[Any]) -> ast.Edit:
        return self._edge_edit("scale", meta, ch)

    # expressions
    def _binary_chain(self, meta: Meta, ch: list[Any]) -> ast.Expr:
        expr: ast.Expr = ch[0]
        for i in range(1, len(ch), 2):
            right = ch[i + 1]
            span = Span(
                self.path, expr.span.line, expr.span.col, right.span.end_line, right.span.end_col
            )
            expr = ast.Binary(str(ch[i]), expr, right, span)
        return expr

    or_expr = and_expr = comparison = sum = product = _binary_chain

    def not_op(self, meta: Meta, ch: list[Any]) -> ast.Unary:
        return ast.Unary("not", ch[1], self._span(meta))

    def neg(self, meta: Meta, ch: list[Any]) -> ast.Unary:
        return ast.Unary("-", ch[1], self._span(meta))

    def var(self, meta: Meta, ch: list[Any]) -> ast.Var:
        return ast.Var(self._name(ch[0]), self._span(meta))

    def attr(self, meta: Meta, ch: list[Any]) -> ast.Attr:
        token = ch[0]
        head, _, tail = str(token).partition(".")
        span = _span_of(self.path, token)
        var = ast.Name(head, Span(span.file, span.line, span.col, span.line, span.col + len(head)))
        attr = ast.Name(
            tail, Span(span.file, span.line, span.col + len(head) + 1, span.end_line, span.end_col)
        )
        return ast.Attr(var, attr, span)

    def call(self, meta: Meta, ch: list[Any]) -> ast.Call:
        args = tuple(c for c in ch[1:] if not isinstance(c, Token))
        return ast.Call(self._name(ch[0]), args, self._span(meta))

    def atom(self, meta: Meta, ch: list[Any]) -> ast.Expr:
        found: ast.Expr = next(c for c in ch if not isinstance(c, Token))
        return found

    simple_expr = atom  # `( expr )` where only a simple expression may stand


_BUILDERS: dict[str, Any] = {
    name: member
    for name, member in vars(_Builder).items()
    if not name.startswith("_") and name != "transform" and callable(member)
}


# ---- syntax errors -------------------------------------------------------------

_READABLE = {
    "NAME": "a name",
    "DOTTED": "a dotted name",
    "NUMBER": "a number",
    "ANGLE": "an angle like `30deg`",
    "STRING": 'a "string"',
    "$END": "the end of the file",
    "ARROW": "`->`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "EQUALS": "`=`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "DOTDOT": "`..`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "PLUSMINUS": "`±`",
    "COMPARE": "a comparison like `>=`",
}


def readable(terminal: str) -> str:
    """How to name a terminal in a message: `feature`, `->`, "a name"."""
    if terminal in _READABLE:
        return _READABLE[terminal]
    kw = keywords().get(terminal)
    return f"`{kw}`" if kw else terminal.lower()


def _expected_list(expected: set[str]) -> str:
    words = sorted({readable(t) for t in expected})
    if len(words) > 8:
        words = [*words[:8], "..."]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


_STATEMENT_KEYWORDS = (
    "circuit",
    "cite",
    "model",
    "import",
    "from",
    "threshold",
    "feature",
    "family",
    "for",
    "expect",
    "predict",
    "weights",
)


def _syntax_diagnostic(err: UnexpectedInput, source: str, path: str) -> Diagnostic:
    line = err.line if err.line and err.line > 0 else max(1, source.count("\n") + 1)
    col = err.column if err.column and err.column > 0 else 1
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        char = source[pos] if pos < len(source) else ""
        span = Span(path, line, col, line, col + 1)
        if char == '"':
            return Diagnostic(
                d.E_UNCLOSED,
                "this string is never closed",
                span,
                help='close it with `"` on the same line',
            )
        allowed = set(err.allowed or ())
        help_ = f"expected {_expected_list(allowed)} here" if allowed else None
        return Diagnostic(d.E_UNEXPECTED_CHAR, f"unexpected character `{char}`", span, help=help_)
    if isinstance(err, UnexpectedEOF):
        return _end_of_file(set(err.expected), Span(path, line, col, line, col))
    assert isinstance(err, UnexpectedToken)
    token = err.token
    expected = set(err.expected) | set(getattr(err, "accepts", None) or ())
    if token.type == "$END":
        return _end_of_file(expected, Span(path, line, col, line, col))
    text = str(token)
    span = Span(path, line, col, token.end_line or line, token.end_column or col + len(text))
    message = f"unexpected {_describe(token)}"
    help_ = _hint(token, expected, err)
    return Diagnostic(
        d.E_SYNTAX, message, span, help=help_ or f"expected {_expected_list(expected)}"
    )


def _end_of_file(expected: set[str], span: Span) -> Diagnostic:
    if "RBRACE" in expected:
        return Diagnostic(d.E_UNCLOSED, "a `{` is never closed", span, help="add the closing `}`")
    return Diagnostic(
        d.E_SYNTAX,
        "the file ends in the middle of a statement",
        span,
        help=_MISSING_COLON if expected == {"MORE"} else f"expected {_expected_list(expected)}",
    )


_MISSING_COLON = (
    "a claim needs a colon after its target: `a -> b : excites ...` (a signed comparison"
    " reads `a -> b excites more than c -> b`)"
)


def _describe(token: Token) -> str:
    if token.type in keywords():
        return f"keyword `{token}`"
    if token.type == "NAME":
        return f"name `{token}`"
    return f"`{token}`"


def _hint(token: Token, expected: set[str], err: UnexpectedToken) -> str | None:
    """Curated help for the commonest mistakes."""
    text = str(token)
    kw_expected = [keywords()[t] for t in expected if t in keywords()]
    # `excite` is a keyword of proportions but a misspelling of `excites` in a claim
    if (token.type == "NAME" or token.type in keywords()) and kw_expected:
        guess = d.did_you_mean(text, kw_expected)
        if guess:
            return guess
    previous = _previous_token(err)
    statement_start = expected <= {"ARROW", "WITHIN", "LSQB"}
    if statement_start and previous is not None and previous.type == "NAME":
        guess = d.did_you_mean(str(previous), _STATEMENT_KEYWORDS)
        if guess:
            return f"`{previous}` does not start a statement; {guess}"
    claim_words = {"excites", "inhibits", "weak", "among", "strongest", "equivariant"}
    if "COLON" in expected and text in claim_words:
        return f"a claim needs a colon after its target: `a -> b : {text} ...`"
    if expected == {"MORE"}:
        return _MISSING_COLON
    if "ARROW" in expected and token.type in ("COLON",):
        return "name the target of the claim: `a -> b : excites`"
    if token.type == "NUMBER" and "ANGLE" in expected:
        return f"angles carry a unit: write `{text}deg`"
    return None


def _previous_token(err: UnexpectedToken) -> Token | None:
    """The token just before the error, if the parser state still holds it."""
    state = getattr(err, "interactive_parser", None)
    if state is None:
        return None
    stack = state.parser_state.value_stack
    node = stack[-1] if stack else None
    while isinstance(node, Tree) and node.children:  # already reduced, e.g. to a `ref`
        node = node.children[-1]
    return node if isinstance(node, Token) else None
