"""Format: `ast.Spec` -> canonical .circ text, comments kept.

The layout is fixed (one statement per line, `for` bodies indented two spaces,
single blank lines kept between paragraphs, long families wrapped at 100
columns), so formatting is idempotent. Literals keep the text they were written
with (`22.5deg` stays `22.5deg`), so formatting never changes the compiled graph.
The `*_text` helpers are also how the compiler writes each claim's text.
"""

from __future__ import annotations

import re

from circuitdsl.language import diagnostics as d
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError
from circuitdsl.language.syntax import ast

WIDTH = 100
# `model NAME`, `model NAME:NAME`, `model vgg16-hed`, `model timm:resnet18.a1_in1k` (the
# grammar's NAME/DOTTED parts joined by `:` or `-`); anything else stays quoted
_PART = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*"
_MODEL_NAME = re.compile(rf"{_PART}([:-]{_PART})*")
INDENT = "  "

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "not": 3,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal_text(lit: ast.Literal) -> str:
    if lit.unit == "string":
        return lit.raw if lit.raw and not lit.raw.startswith('"') else quote(str(lit.value))
    raw = lit.raw or f"{lit.value:g}"
    return raw.replace("°", "deg")


def expr_text(expr: ast.Expr, parent: int = 0) -> str:
    """An expression, with only the parentheses its precedence needs."""
    if isinstance(expr, ast.Literal):
        return literal_text(expr)
    if isinstance(expr, ast.Var):
        return expr.name.text
    if isinstance(expr, ast.Attr):
        return f"{expr.var.text}.{expr.attr.text}"
    if isinstance(expr, ast.Call):
        return f"{expr.func.text}({', '.join(expr_text(a) for a in expr.args)})"
    if isinstance(expr, ast.Unary):
        inner = expr_text(expr.operand, 7 if expr.op == "-" else 3)
        text = f"-{inner}" if expr.op == "-" else f"not {inner}"
        level = 7 if expr.op == "-" else 3
    else:
        level = _PRECEDENCE[expr.op]
        # Comparisons do not chain (`a < b == c` is a syntax error): both sides need
        # parentheses around another comparison; the other operators are left-associative.
        left = level + 1 if level == _PRECEDENCE["=="] else level
        text = f"{expr_text(expr.left, left)} {expr.op} {expr_text(expr.right, level + 1)}"
    return f"({text})" if level < parent else text


def simple_expr_text(expr: ast.Expr) -> str:
    """Where the grammar takes only a literal or `a.b`, anything else needs parentheses."""
    if isinstance(expr, (ast.Literal, ast.Attr)):
        return expr_text(expr)
    if isinstance(expr, ast.Unary) and isinstance(expr.operand, ast.Literal):
        return expr_text(expr)
    return f"({expr_text(expr)})"


def ref_text(ref: ast.Ref) -> str:
    if ref.channel is None:
        return ref.name.text
    return f"{ref.name.text}[{literal_text(ref.channel)}]"


def region_text(region: ast.Region) -> str:
    if region.name is not None:
        return region.name.text
    assert region.rows is not None
    text = f"rows {literal_text(region.rows[0])}..{literal_text(region.rows[1])}"
    if region.cols is not None:
        text += f" cols {literal_text(region.cols[0])}..{literal_text(region.cols[1])}"
    return text


def body_text(body: ast.ClaimBody) -> str:
    """`excites at top`, `among top 10 inputs`, ..."""
    if isinstance(body, ast.SignBody):
        return body.sign
    if isinstance(body, ast.RegionBody):
        return f"{body.sign} at {region_text(body.region)}"
    if isinstance(body, ast.StrongestBody):
        return f"strongest at {region_text(body.region)}"
    if isinstance(body, ast.RankBody):
        polarity = "" if body.polarity == "any" else f" {body.polarity}"
        return f"among top {literal_text(body.k)}{polarity} inputs"
    if isinstance(body, ast.ShapeBody):
        return f"{body.sign} along {body.shape} {simple_expr_text(body.orientation)}"
    period = f" mod {simple_expr_text(body.period)}" if body.period is not None else ""
    return f"equivariant under {body.transform.text}({body.param.text}){period}"


def options_text(options: tuple[ast.ThresholdOption, ...], claim_id: ast.Name | None) -> str:
    text = ""
    if options:
        text += (
            " (" + ", ".join(f"{o.stat.text} {o.op} {literal_text(o.value)}" for o in options) + ")"
        )
    if claim_id is not None:
        text += f" as {claim_id.text}"
    return text


def stimulus_text(stim: ast.Stimulus) -> str:
    args = ", ".join(f"{n.text} = {expr_text(e)}" for n, e in stim.args)
    return f"{stim.name.text}({args})"


def selector_text(sel: ast.Selector) -> str:
    """`top 4 of conv2 by curve(radius = 8) over orientation`."""
    over = f" over {sel.over.text}" if sel.over is not None else ""
    return (
        f"top {literal_text(sel.count)} of {sel.layer.text} by {stimulus_text(sel.stimulus)}{over}"
    )


def activation_text(act: ast.Activation) -> str:
    """The activation test as written, with `pre ` in front when it reads before the ReLU."""
    return ("pre " if act.read == "pre" else "") + _test_text(act)


def _test_text(act: ast.Activation) -> str:
    if act.test == "covers":
        assert act.param is not None and act.value is not None
        on = f" on {stimulus_text(act.stimulus)}" if act.stimulus is not None else ""
        return f"covers {act.param.text} in {expr_text(act.value)} bins{on}"
    assert act.stimulus is not None
    stim = stimulus_text(act.stimulus)
    if act.test == "responds":
        return f"responds to {stim}"
    if act.test == "no_echo":
        return f"no echo on {stim}"
    if act.test == "invariant":
        assert act.param is not None
        return f"invariant to {act.param.text} on {stim}"
    assert act.param is not None and act.value is not None and act.tolerance is not None
    return f"prefers {act.param.text} {expr_text(act.value)} ± {expr_text(act.tolerance)} on {stim}"


def change_text(change: str, size: ast.ChangeSize | None) -> str:
    """`increases`, `increases by at least 20%`, `decreases to below 0.5 of`, ..."""
    if size is None:
        return change
    raw = size.value.raw or f"{size.value.value:g}"
    phrase = {
        "by_at_least": f"by at least {raw}",
        "to_above": f"to above {raw} of",
        "to_below": f"to below {raw} of",
        "within": f"within {raw}",
    }[size.kind]
    return f"{change} {phrase}"


def edit_text(edit: ast.Edit) -> str:
    if edit.kind == "ablate":
        assert edit.target is not None
        return f"ablate {ref_text(edit.target)}"
    assert edit.edge is not None
    part = "" if edit.part == "all" else f" {edit.part}"
    text = f"{edit.kind}{part} ({ref_text(edit.edge[0])} -> {ref_text(edit.edge[1])})"
    if edit.kind == "scale" and edit.factor is not None:
        text += f" by {literal_text(edit.factor)}"
    return text


def statement_lines(stmt: ast.Statement) -> list[str]:
    """The canonical text of one statement (several lines for families and `for`)."""
    if isinstance(stmt, ast.CircuitDecl):
        desc = f" {quote(stmt.description)}" if stmt.description is not None else ""
        return [f"circuit {stmt.name.text}{desc}"]
    if isinstance(stmt, ast.CiteDecl):
        return [f"cite {quote(stmt.text)}"]
    if isinstance(stmt, ast.ModelDecl):
        simple = _MODEL_NAME.fullmatch(stmt.model) is not None
        pre = f" preprocess {stmt.preprocess.text}" if stmt.preprocess is not None else ""
        return [f"model {stmt.model if simple else quote(stmt.model)}{pre}"]
    if isinstance(stmt, ast.ImportDecl):
        if stmt.names is None:
            return [f"import {quote(stmt.path)}"]
        return [f"from {quote(stmt.path)} import {', '.join(n.text for n in stmt.names)}"]
    if isinstance(stmt, ast.ThresholdDecl):
        o = stmt.option
        return [f"threshold {stmt.word.text} {o.stat.text} {o.op} {literal_text(o.value)}"]
    if isinstance(stmt, ast.FeatureDecl):
        label = f" {quote(stmt.label)}" if stmt.label is not None else ""
        if stmt.select is not None:
            return [f"feature {stmt.name.text} = {selector_text(stmt.select)}{label}"]
        return [f"feature {stmt.name.text} = {_combination_text(stmt.terms)}{label}"]
    if isinstance(stmt, ast.FamilyDecl):
        return _family_lines(stmt)
    if isinstance(stmt, ast.ClaimStmt):
        if stmt.union:
            sources = "{" + ", ".join(ref_text(r) for r in stmt.sources) + "}"
        else:
            sources = ref_text(stmt.sources[0])
        items = ", ".join(
            body_text(i.body) + options_text(i.options, i.claim_id) for i in stmt.items
        )
        where = f" where {expr_text(stmt.where)}" if stmt.where is not None else ""
        return [f"{sources} -> {ref_text(stmt.target)} : {items}{where}"]
    if isinstance(stmt, ast.CompareStmt):
        if stmt.grouped:
            # The AST keeps one member of `{a, b}`: printing it would silently drop the
            # other and turn an invalid spec into a valid one. Refuse, as `check` does.
            raise DiagnosticError(
                [
                    Diagnostic(
                        d.E_SYNTAX,
                        "a comparison is between two single connections",
                        stmt.span,
                        help="write `a -> c stronger than b -> c`; fmt leaves the file as it is",
                    )
                ]
            )
        (a, c), (b, e) = stmt.stronger, stmt.weaker
        return [
            f"{ref_text(a)} -> {ref_text(c)} stronger than {ref_text(b)} -> {ref_text(e)}"
            + options_text(stmt.options, stmt.claim_id)
        ]
    if isinstance(stmt, ast.WithinStmt):
        return [
            f"{ref_text(stmt.subject)} within {stmt.layer.text}"
            + options_text(stmt.options, stmt.claim_id)
        ]
    if isinstance(stmt, ast.BandingStmt):
        return [
            f"weights into {stmt.layer.text} : banded {stmt.direction.text}"
            + options_text(stmt.options, stmt.claim_id)
        ]
    if isinstance(stmt, ast.ExpectStmt):
        return [
            f"expect {ref_text(stmt.subject)} {activation_text(stmt.activation)}"
            + options_text(stmt.options, stmt.claim_id)
        ]
    if isinstance(stmt, ast.PredictStmt):
        edits = ", ".join(edit_text(e) for e in stmt.edits)
        return [
            f"predict {edits}: {ref_text(stmt.subject)} {activation_text(stmt.activation)} "
            f"{change_text(stmt.change, stmt.size)}" + options_text(stmt.options, stmt.claim_id)
        ]
    assert isinstance(stmt, ast.ForStmt)
    bindings = ", ".join(f"{b.var.text} in {b.family.text}" for b in stmt.bindings)
    where = f" where {expr_text(stmt.where)}" if stmt.where is not None else ""
    return [f"for {bindings}{where} {{", "}"]  # the body is laid out by the caller


def _combination_text(terms: tuple[ast.ChannelTerm, ...]) -> str:
    parts = []
    for i, t in enumerate(terms):
        coef = f"{literal_text(t.coefficient)} * " if t.coefficient is not None else ""
        body = f"{coef}{t.layer.text}:{literal_text(t.channel)}"
        if i == 0:
            parts.append(f"-{body}" if t.negated else body)
        else:
            parts.append(f"{'-' if t.negated else '+'} {body}")
    return " ".join(parts)


def _member_text(m: ast.Member) -> str:
    if not m.values:
        return literal_text(m.channel)
    values = [literal_text(v) for v in m.values]
    body = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
    return f"{literal_text(m.channel)}: {body}"


def _family_lines(stmt: ast.FamilyDecl) -> list[str]:
    params = ""
    if stmt.params:
        params = "(" + ", ".join(f"{p.name.text}: {p.type.text}" for p in stmt.params) + ")"
    label = f" {quote(stmt.label)}" if stmt.label is not None else ""
    if stmt.select is not None:
        return [f"family {stmt.name.text}{params} = {selector_text(stmt.select)}{label}"]
    head = f"family {stmt.name.text}{params} in {stmt.layer.text}{label} {{"
    members = [_member_text(m) for m in stmt.members]
    one_line = f"{head} {', '.join(members)} }}"
    if len(one_line) <= WIDTH:
        return [one_line]
    lines = [head]
    current = INDENT
    for i, text in enumerate(members):
        piece = text + ("," if i < len(members) - 1 else "")
        if current.strip() and len(current) + 1 + len(piece) > WIDTH:
            lines.append(current.rstrip())
            current = INDENT
        current += piece + " "
    lines.append(current.rstrip())
    lines.append("}")
    return lines


def format_spec(spec: ast.Spec) -> str:
    """The canonical text of a parsed spec, with its comments where they were."""
    comments = sorted(spec.comments, key=lambda c: (c.line, c.col))
    out: list[str] = []
    last = _layout(spec.statements, comments, out, "", previous_end=0)
    for c in comments:  # comments after the last statement
        if out and c.line > last + 1 and out[-1]:
            out.append("")
        out.append(c.text.rstrip())
        last = c.line
    return "\n".join(out) + "\n"


def _layout(
    statements: tuple[ast.Statement, ...],
    comments: list[ast.Comment],
    out: list[str],
    indent: str,
    previous_end: int,
) -> int:
    """Append the statements' lines to `out`, consuming the comments placed among them.

    Returns the last source line laid out. A blank line in the source between two
    statements (or their leading comments) is kept as one blank line.
    """
    for stmt in statements:
        start, end = stmt.span.line, stmt.span.end_line
        leading = [c for c in comments if c.line < start]
        first_line = min([start, *(c.line for c in leading)])
        if (
            out
            and previous_end
            and first_line > previous_end + 1
            and out[-1]
            and not out[-1].endswith("{")
        ):
            out.append("")
        for c in leading:
            comments.remove(c)
            out.append(indent + c.text.rstrip())
        lines = statement_lines(stmt)
        if isinstance(stmt, ast.ForStmt):
            out.append(indent + lines[0] + _trailing(comments, start, start))
            inside = [c for c in comments if c.line < end]
            for c in inside:
                comments.remove(c)
            _layout(stmt.body, inside, out, indent + INDENT, start)
            for c in inside:  # after the block's last statement, before its `}`
                out.append(indent + INDENT + c.text.rstrip())
            out.append(indent + "}" + _trailing(comments, end, end))
        else:
            body = [indent + line for line in lines]
            body[-1] += _trailing(comments, start, end)
            out.extend(body)
        previous_end = end
    return previous_end


def _trailing(comments: list[ast.Comment], first: int, last: int) -> str:
    """Comments on lines first..last, moved to the end of the statement's last line."""
    mine = [c for c in comments if first <= c.line <= last]
    for c in mine:
        comments.remove(c)
    return "".join("  " + c.text.rstrip() for c in mine)
