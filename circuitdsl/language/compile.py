"""Compile: `Resolved` spec -> `ir.Circuit` (quantifiers expanded, ids and thresholds fixed).

Every `for` is expanded over its families' members, keeping the combinations whose
`where` condition holds; every claim item becomes one `ir.Claim` with a stable,
readable id (`windows->car.excites_at_top`, or the `as NAME` given in the spec) and
its effective thresholds (see claims.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, cast

from circuitdsl.language import diagnostics as d
from circuitdsl.language import ir
from circuitdsl.language import kinds as k
from circuitdsl.language.claims import effective_thresholds
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span
from circuitdsl.language.resolve import ClaimStatement, Resolved
from circuitdsl.language.syntax import ast
from circuitdsl.language.syntax.fmt import (
    activation_text,
    body_text,
    change_text,
    comparison_text,
    edit_text,
    expr_text,
    statement_lines,
)

Env = dict[str, ir.Feature]  # loop variable -> the member it is bound to


def angle_between(a: float, b: float) -> float:
    """Smallest difference between two directions, in [0, 180] degrees."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def orientation_between(a: float, b: float) -> float:
    """Smallest difference between two undirected orientations, in [0, 90] degrees."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


def evaluate(expr: ast.Expr, env: Env) -> Any:
    """The value of a type-checked expression with loop variables bound to members."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Attr):
        return env[expr.var.text].param(expr.attr.text)
    if isinstance(expr, ast.Call):
        args = [evaluate(a, env) for a in expr.args]
        functions: dict[str, Callable[..., float]] = {
            "angle_between": angle_between,
            "orientation_between": orientation_between,
            "abs": abs,
        }
        return functions[expr.func.text](*args)
    if isinstance(expr, ast.Unary):
        value = evaluate(expr.operand, env)
        return -value if expr.op == "-" else not value
    if isinstance(expr, ast.Var):  # resolve rejects bare variables in expressions
        raise AssertionError("unreachable: bare variable in expression")
    left = evaluate(expr.left, env)
    if expr.op == "and":
        return bool(left) and bool(evaluate(expr.right, env))
    if expr.op == "or":
        return bool(left) or bool(evaluate(expr.right, env))
    right = evaluate(expr.right, env)
    if expr.op == "/" and not right:
        # a value that is not a number (infinity) cannot be drawn, compared or saved
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_BAD_VALUE,
                    "division by zero in this expression (for the members it is evaluated on)",
                    expr.span,
                    help="guard it with a `where` clause, or divide by a value that is never 0",
                )
            ]
        )
    if expr.op in ("==", "!="):
        same = (
            left == right
            if not isinstance(left, float)
            else math.isclose(left, right, abs_tol=1e-9)
        )
        return same if expr.op == "==" else not same
    operations: dict[str, Callable[[], Any]] = {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "/": lambda: left / right,
        "<": lambda: left < right,
        "<=": lambda: left <= right,
        ">": lambda: left > right,
        ">=": lambda: left >= right,
    }
    return operations[expr.op]()


#: The most quantifier instances (combinations a `for` visits) one spec may expand to.
#: A `for` over four 100-member families is 10^8 combinations: minutes of work and
#: gigabytes of claims. Settable with `circ check --max-instances N` / `max_instances=`.
MAX_INSTANCES = 1_000_000


class _Compiler:
    def __init__(self, resolved: Resolved, max_instances: int = MAX_INSTANCES) -> None:
        self.r = resolved
        self.claims: list[ir.Claim] = []
        self.errors: list[Diagnostic] = []
        self.ids: dict[str, Span | None] = {}
        # the enclosing `for` statements and the text of the statement being compiled:
        # every claim of a quantified line carries the line's text and alpha
        self.fors: list[ast.ForStmt] = []
        self.stmt_text = ""
        self.stmt_alpha: float | None = None
        self.quantified = False  # a family as a whole, or each member of a family
        self.max_instances = max_instances
        self.instances = 0  # combinations visited so far, over every `for`

    # ---- references -------------------------------------------------------------------
    def node(self, ref: ast.Ref, env: Env) -> str:
        if ref.name.text in env:
            return env[ref.name.text].name
        if ref.channel is not None:
            return f"{ref.name.text}[{int(float(ref.channel.value))}]"
        return ref.name.text

    def member(self, ref: ast.Ref, env: Env) -> ir.Feature | None:
        name = self.node(ref, env)
        return self.r.features.get(name)

    # ---- claims -----------------------------------------------------------------------
    def add(self, claim_id: str, explicit: ast.Name | None, env: Env, **fields: Any) -> None:
        if explicit is not None:
            claim_id = explicit.text
            if env:  # one explicit id names every expansion: tell them apart by member
                claim_id += "." + ",".join(env[v].name for v in sorted(env))
        if claim_id in self.ids:
            first = self.ids[claim_id]
            self.errors.append(
                Diagnostic(
                    d.E_DUPLICATE_CLAIM,
                    f"claim `{claim_id}` is stated twice",
                    fields["span"],
                    help="remove one, or tell them apart with `as NAME`",
                    notes=(f"first stated at {first}",) if first else (),
                )
            )
            return
        self.ids[claim_id] = fields["span"]
        line, alpha = self.line_of(fields)
        kind = fields["payload"].kind
        self.claims.append(ir.Claim(id=claim_id, kind=kind, line=line, alpha=alpha, **fields))

    def line_of(self, fields: dict[str, Any]) -> tuple[str | None, float | None]:
        """The quantified line a claim belongs to (None if it is a single claim) and its alpha."""
        text = self.stmt_text
        for f in reversed(self.fors):
            bindings = ", ".join(f"{b.var.text} in {b.family.text}" for b in f.bindings)
            where = f" where {expr_text(f.where)}" if f.where is not None else ""
            text = f"for {bindings}{where} {{ {text} }}"
        families = self.r.families
        whole = any(n in families for e in fields.get("edges", ()) for n in e) or any(
            n in families for n in fields.get("subjects", ())
        )
        if not self.fors and not whole and not self.quantified:
            return None, None
        alpha = self.stmt_alpha
        for f in reversed(self.fors):
            if alpha is None and f.alpha is not None:
                alpha = float(f.alpha.value)
        if alpha is None:
            alpha = self.r.alpha
        return text, alpha

    def thresholds(
        self,
        payload: k.Payload,
        options: tuple[ast.ThresholdOption, ...],
        extra: tuple[ir.Threshold, ...] = (),
    ) -> tuple[ir.Threshold, ...]:
        own = tuple(
            ir.Threshold(o.stat.text, o.op, float(o.value.value)) for o in options if o.op != "="
        )
        return effective_thresholds(payload.rule_word(), self.r.thresholds, own, extra)

    def statement(self, stmt: ClaimStatement, env: Env, origin: Span | None) -> None:
        if isinstance(stmt, ast.ForStmt):
            self.fors.append(stmt)
            try:
                for bound in self.bindings(stmt, env):
                    for body in stmt.body:
                        self.statement(cast(ClaimStatement, body), bound, origin or stmt.span)
            finally:
                self.fors.pop()
            return
        self.stmt_text = statement_lines(stmt)[0]
        alpha = getattr(stmt, "alpha", None)
        self.stmt_alpha = float(alpha.value) if alpha is not None else None
        self.quantified = False
        if isinstance(stmt, ast.ClaimStmt):
            if stmt.where is None or evaluate(stmt.where, env):
                self.claim_stmt(stmt, env, origin)
        elif isinstance(stmt, ast.CompareStmt):
            a, c = (self.node(r, env) for r in stmt.stronger)
            b, e = (self.node(r, env) for r in stmt.weaker)
            words = comparison_text(stmt.measure)
            compare = k.CompareClaim(stmt.measure)
            self.add(
                f"{a}->{c}.{words.replace(' ', '_')}.{b}->{e}",
                stmt.claim_id,
                env,
                text=f"{a} -> {c} {words} {b} -> {e}",
                edges=((a, c), (b, e)),
                payload=compare,
                thresholds=self.thresholds(compare, stmt.options),
                span=stmt.span,
                origin=origin,
            )
        elif isinstance(stmt, ast.WithinStmt):
            s = self.node(stmt.subject, env)
            neg = "not " if stmt.negated else ""
            within = k.WithinClaim(stmt.layer.text, negated=bool(stmt.negated))
            self.add(
                f"{s}.{neg.strip() + '_' if neg else ''}within_{stmt.layer.text}",
                stmt.claim_id,
                env,
                text=f"{neg}{s} within {stmt.layer.text}",
                subjects=(s,),
                payload=within,
                thresholds=self.thresholds(within, stmt.options),
                span=stmt.span,
                origin=origin,
            )
        elif isinstance(stmt, ast.BandingStmt):
            layer, direction = stmt.layer.text, stmt.direction.text
            neg = "not " if stmt.negated else ""
            than = stmt.than.text if stmt.than is not None else None
            more = f" more than {than}" if than else ""
            banding = k.BandingClaim(layer, direction, than or None, negated=bool(neg))
            self.add(
                f"{layer}.{'not_' if neg else ''}banded_{direction}"
                + (f"_more_than_{than}" if than else ""),
                stmt.claim_id,
                env,
                text=f"weights into {layer} : {neg}banded {direction}{more}",
                payload=banding,
                thresholds=self.thresholds(banding, stmt.options),
                span=stmt.span,
                origin=origin,
            )
        elif isinstance(stmt, ast.ProportionStmt):
            target, n, layer = (
                self.node(stmt.target, env),
                int(float(stmt.k.value)),
                stmt.layer.text,
            )
            proportion = k.ProportionClaim(layer, k=n, sign=stmt.sign)
            self.add(
                f"{target}.most_of_top{n}_from_{layer}_{stmt.sign}",
                stmt.claim_id,
                env,
                text=f"most of the top {n} inputs of {target} from {layer} {stmt.sign}",
                subjects=(target,),
                payload=proportion,
                thresholds=self.thresholds(proportion, stmt.options),
                span=stmt.span,
                origin=origin,
            )
        elif isinstance(stmt, ast.ExpectStmt) and stmt.activation.test == "covers":
            self.covers_stmt(stmt, env, origin)
        elif isinstance(stmt, (ast.ExpectStmt, ast.PredictStmt)):
            for subject_env in self.subject_envs(stmt.subject, env):
                self.activation_stmt(stmt, subject_env, origin)

    def bindings(self, stmt: ast.ForStmt, env: Env) -> Iterator[Env]:
        pools = [
            [self.r.features[m] for m in self.r.families[b.family.text].members]
            for b in stmt.bindings
        ]
        size = math.prod(len(p) for p in pools)
        if self.instances + size > self.max_instances:
            self.too_many(stmt, size)
        self.instances += size
        for combo in itertools.product(*pools):
            bound = dict(env)
            bound.update({b.var.text: m for b, m in zip(stmt.bindings, combo, strict=True)})
            if stmt.where is None or evaluate(stmt.where, bound):
                yield bound

    def too_many(self, stmt: ast.ForStmt, size: int) -> NoReturn:
        """E113: the quantifiers would expand to more instances than allowed."""
        pools = " x ".join(
            f"{len(self.r.families[b.family.text].members)} ({b.family.text})"
            for b in stmt.bindings
        )
        raise DiagnosticError(
            [
                Diagnostic(
                    d.E_TOO_MANY,
                    f"this `for` expands to {size:,} combinations ({pools}); "
                    + (f"with the {self.instances:,} before it, " if self.instances else "")
                    + f"that exceeds the limit of {self.max_instances:,} instances",
                    stmt.span,
                    help="narrow it with `where`, split the families, or raise the limit"
                    " with `--max-instances N`",
                )
            ]
        )

    def subject_envs(self, subject: ast.Ref, env: Env) -> Iterator[Env]:
        """A family as subject of an activation claim means each member, as `self`."""
        name = self.node(subject, env)
        if name in self.r.families and subject.name.text not in env:
            self.quantified = True  # one claim per member: a quantified line
            for m in self.r.families[name].members:
                yield {**env, "self": self.r.features[m]}
        else:
            feature = self.r.features.get(name)
            yield {**env, "self": feature} if feature is not None else dict(env)

    def claim_stmt(self, stmt: ast.ClaimStmt, env: Env, origin: Span | None) -> None:
        sources = [self.node(r, env) for r in stmt.sources]
        target = self.node(stmt.target, env)
        lhs = "{" + ", ".join(sources) + "}" if stmt.union else sources[0]
        id_lhs = "{" + ",".join(sources) + "}" if stmt.union else sources[0]
        for item in stmt.items:
            if target in sources:
                self.errors.append(
                    Diagnostic(
                        d.E_SELF_CLAIM,
                        f"`{target}` cannot connect to itself",
                        stmt.span,
                        help="a claim joins an earlier feature to a later one",
                    )
                )
                return
            if len(stmt.items) > 1:
                self.stmt_text = statement_lines(dataclasses.replace(stmt, items=(item,)))[0]
            payload, slug = self.body(item.body, env)
            settings = {o.stat.text: float(o.value.value) for o in item.options if o.op == "="}
            if settings and isinstance(payload, k.ShapeClaim):
                # `(radius = 3)`: a parameter, not a threshold (resolve allows only this one)
                payload = dataclasses.replace(payload, radius=settings["radius"])
            extra: tuple[ir.Threshold, ...] = ()
            if isinstance(payload, k.RankClaim):
                extra = (ir.Threshold("rank", "<=", float(payload.k)),)
            if stmt.union:
                assert isinstance(payload, k.SignClaim)  # resolve allows only signs
                payload = k.UnionClaim(payload.sign)
            edges = tuple((s, target) for s in sources)
            self.add(
                f"{id_lhs}->{target}.{slug}",
                item.claim_id,
                env,
                text=f"{lhs} -> {target} : {self.body_text(item.body, env)}",
                edges=edges,
                payload=payload,
                thresholds=self.thresholds(payload, item.options, extra),
                span=item.span if len(stmt.items) > 1 else stmt.span,
                origin=origin,
            )

    def body(self, body: ast.ClaimBody, env: Env) -> tuple[k.Payload, str]:
        """(payload, id slug) of one claim item."""
        if isinstance(body, ast.SignBody):
            return k.SignClaim(body.sign), body.sign
        if isinstance(body, ast.RegionBody):
            region = _region(body.region)
            return k.RegionClaim(body.sign, region), f"{body.sign}_at_{region.slug}"
        if isinstance(body, ast.StrongestBody):
            region = _region(body.region)
            which = "_inhibition" if body.sign == "inhibits" else ""
            return k.StrongestClaim(body.sign, region), f"strongest{which}_at_{region.slug}"
        if isinstance(body, ast.RankBody):
            n = int(float(body.k.value))
            suffix = "" if body.polarity == "any" else f"_{body.polarity}"
            return k.RankClaim(n, body.polarity), f"top{n}{suffix}"
        if isinstance(body, ast.ShapeBody):
            orientation = _finite(float(evaluate(body.orientation, env)), body.span)
            return (
                k.ShapeClaim(body.sign, body.shape, orientation),
                f"{body.sign}_along_{body.shape}",
            )
        assert isinstance(body, ast.EquivarianceBody)
        period = (
            _finite(float(evaluate(body.period, env)), body.span)
            if body.period is not None
            else None
        )
        return (
            k.EquivarianceClaim(body.transform.text, body.param.text, period),
            f"equivariant_{body.transform.text}",
        )

    def body_text(self, body: ast.ClaimBody, env: Env) -> str:
        if isinstance(body, ast.ShapeBody) and env:
            return f"{body.sign} along {body.shape} {evaluate(body.orientation, env):g}deg"
        return body_text(body)

    def activation_stmt(
        self, stmt: ast.ExpectStmt | ast.PredictStmt, env: Env, origin: Span | None
    ) -> None:
        subject = env["self"].name if "self" in env else self.node(stmt.subject, env)
        act = stmt.activation
        assert act.stimulus is not None  # only `covers` may leave it out
        activation = k.ActivationTest(
            act.test,
            self.stimulus(act.stimulus, env),
            act.param.text if act.param else None,
            evaluate(act.value, env) if act.value is not None else None,
            evaluate(act.tolerance, env) if act.tolerance is not None else None,
            "pre" if act.read == "pre" else None,  # absent: after the nonlinearity
        )
        stim_slug = act.stimulus.name.text + ("_pre" if act.read == "pre" else "")
        if isinstance(stmt, ast.ExpectStmt):
            expect = k.ActivationClaim.of(subject, activation)
            self.add(
                f"{subject}.{act.test}_{stim_slug}",
                stmt.claim_id,
                env,
                text=f"expect {subject} {activation_text(act)}",
                subjects=(subject,),
                payload=expect,
                thresholds=self.thresholds(expect, stmt.options),
                span=stmt.span,
                origin=origin,
            )
            return
        edits = tuple(self.edit(e, env) for e in stmt.edits)
        edit_slug = "+".join(e.slug for e in edits)
        prediction = k.PredictionClaim(subject, edits, activation, stmt.change, _size(stmt.size))
        self.add(
            f"{subject}.{act.test}_{stim_slug}.after.{edit_slug}",
            stmt.claim_id,
            env,
            text=(
                f"predict {', '.join(edit_text(e) for e in stmt.edits)}: {subject} "
                f"{activation_text(act)} {change_text(stmt.change, stmt.size)}"
            ),
            subjects=(subject,),
            payload=prediction,
            thresholds=self.thresholds(prediction, stmt.options),
            span=stmt.span,
            origin=origin,
        )

    def stimulus(self, stim: ast.Stimulus, env: Env) -> k.StimulusRef:
        return k.StimulusRef(
            stim.name.text, tuple((n.text, evaluate(e, env)) for n, e in stim.args)
        )

    def covers_stmt(self, stmt: ast.ExpectStmt, env: Env, origin: Span | None) -> None:
        """`expect F covers P in W bins [on S]`: one claim about the family as a whole."""
        family = self.node(stmt.subject, env)
        act = stmt.activation
        assert act.param is not None and act.value is not None
        stimulus = self.stimulus(act.stimulus, env) if act.stimulus is not None else None
        covers = k.CoverageClaim(
            family, "covers", act.param.text, float(evaluate(act.value, env)), stimulus, act.read
        )
        self.add(
            f"{family}.covers_{act.param.text}_{covers.bin:g}",
            stmt.claim_id,
            env,
            text=f"expect {family} {activation_text(act)}",
            subjects=(family,),
            payload=covers,
            thresholds=self.thresholds(covers, stmt.options),
            span=stmt.span,
            origin=origin,
        )

    def edit(self, edit: ast.Edit, env: Env) -> k.Edit:
        return k.Edit(
            edit.kind,
            edit.part,
            self.node(edit.target, env) if edit.target is not None else None,
            (self.node(edit.edge[0], env), self.node(edit.edge[1], env))
            if edit.edge is not None
            else None,
            float(edit.factor.value) if edit.factor is not None else None,
        )


def _size(size: ast.ChangeSize | None) -> k.ChangeSize | None:
    """A change's size as data: percentages become fractions (`20%` -> 0.2)."""
    if size is None:
        return None
    value = float(size.value.value)
    return k.ChangeSize(size.kind, value / 100 if size.value.unit == "%" else value)


def _finite(value: float, span: Span) -> float:
    """E108 for arithmetic that overflowed (`o * 1e300`): the IR and its JSON hold no inf."""
    if math.isfinite(value):
        return value
    raise DiagnosticError(
        [Diagnostic(d.E_BAD_VALUE, f"this value is not a finite number ({value})", span)]
    )


def _region(region: ast.Region) -> k.Region:
    if region.name is not None:
        return k.Region(name=region.name.text)
    assert region.rows is not None
    rows = (int(float(region.rows[0].value)), int(float(region.rows[1].value)))
    cols = None
    if region.cols is not None:
        cols = (int(float(region.cols[0].value)), int(float(region.cols[1].value)))
    return k.Region(rows=rows, cols=cols)


def compile_circuit(resolved: Resolved, *, max_instances: int = MAX_INSTANCES) -> ir.Circuit:
    """Expand and number every claim; raise `DiagnosticError` on duplicate claims.

    `max_instances` bounds the combinations the `for` quantifiers may visit (E113).
    """
    compiler = _Compiler(resolved, max_instances)
    for stmt in resolved.statements:
        compiler.statement(stmt, {}, None)
    if compiler.errors:
        raise DiagnosticError(compiler.errors)
    return ir.Circuit(
        name=resolved.name,
        description=resolved.description,
        citations=resolved.citations,
        model=resolved.model,
        features=tuple(resolved.features.values()),
        families=tuple(resolved.families.values()),
        claims=tuple(compiler.claims),
        path=resolved.path,
        sources=resolved.sources,
        preprocess=resolved.preprocess,
    )
