"""Compile: `Resolved` spec -> `ir.Circuit` (quantifiers expanded, ids and thresholds fixed).

Every `for` is expanded over its families' members, keeping the combinations whose
`where` condition holds; every claim item becomes one `ir.Claim` with a stable,
readable id (`windows->car.excites_at_top`, or the `as NAME` given in the spec) and
its effective thresholds (see claims.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, cast

from circuitdsl.language import diagnostics as d
from circuitdsl.language import ir
from circuitdsl.language.claims import ACTIVATION_RULE_WORDS, effective_thresholds, rule_word
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span
from circuitdsl.language.resolve import ClaimStatement, Resolved
from circuitdsl.language.syntax import ast
from circuitdsl.language.syntax.fmt import activation_text, body_text, change_text, edit_text

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
        "/": lambda: left / right if right else math.inf,
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
        self.claims.append(ir.Claim(id=claim_id, **fields))

    def thresholds(
        self,
        word: str,
        options: tuple[ast.ThresholdOption, ...],
        extra: tuple[ir.Threshold, ...] = (),
    ) -> tuple[ir.Threshold, ...]:
        own = tuple(ir.Threshold(o.stat.text, o.op, float(o.value.value)) for o in options)
        return effective_thresholds(word, self.r.thresholds, own, extra)

    def statement(self, stmt: ClaimStatement, env: Env, origin: Span | None) -> None:
        if isinstance(stmt, ast.ForStmt):
            for bound in self.bindings(stmt, env):
                for body in stmt.body:
                    self.statement(cast(ClaimStatement, body), bound, origin or stmt.span)
        elif isinstance(stmt, ast.ClaimStmt):
            if stmt.where is None or evaluate(stmt.where, env):
                self.claim_stmt(stmt, env, origin)
        elif isinstance(stmt, ast.CompareStmt):
            a, c = (self.node(r, env) for r in stmt.stronger)
            b, e = (self.node(r, env) for r in stmt.weaker)
            self.add(
                f"{a}->{c}.stronger_than.{b}->{e}",
                stmt.claim_id,
                env,
                kind="compare",
                text=f"{a} -> {c} stronger than {b} -> {e}",
                edges=((a, c), (b, e)),
                args={"measure": "norm"},
                thresholds=self.thresholds("stronger", stmt.options),
                span=stmt.span,
                origin=origin,
            )
        elif isinstance(stmt, ast.WithinStmt):
            s = self.node(stmt.subject, env)
            self.add(
                f"{s}.within_{stmt.layer.text}",
                stmt.claim_id,
                env,
                kind="within",
                text=f"{s} within {stmt.layer.text}",
                subjects=(s,),
                args={"branch": stmt.layer.text},
                thresholds=self.thresholds("within", stmt.options),
                span=stmt.span,
                origin=origin,
            )
        elif isinstance(stmt, ast.BandingStmt):
            layer, direction = stmt.layer.text, stmt.direction.text
            self.add(
                f"{layer}.banded_{direction}",
                stmt.claim_id,
                env,
                kind="banding",
                text=f"weights into {layer} : banded {direction}",
                args={"layer": layer, "direction": direction},
                thresholds=self.thresholds("banded", stmt.options),
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
            kind, args, slug = self.body(item.body, env)
            word = rule_word(kind, args)
            extra: tuple[ir.Threshold, ...] = ()
            if kind == "rank":
                extra = (ir.Threshold("rank", "<=", float(args["k"])),)
            if stmt.union:
                kind = "union"
            edges = tuple((s, target) for s in sources)
            self.add(
                f"{id_lhs}->{target}.{slug}",
                item.claim_id,
                env,
                kind=kind,
                text=f"{lhs} -> {target} : {self.body_text(item.body, env)}",
                edges=edges,
                args=args,
                thresholds=self.thresholds(word, item.options, extra),
                span=item.span if len(stmt.items) > 1 else stmt.span,
                origin=origin,
            )

    def body(self, body: ast.ClaimBody, env: Env) -> tuple[str, dict[str, Any], str]:
        """(kind, args, id slug) of one claim item."""
        if isinstance(body, ast.SignBody):
            return "sign", {"sign": body.sign}, body.sign
        if isinstance(body, ast.RegionBody):
            region = _region(body.region)
            return (
                "region",
                {"sign": body.sign, "region": region},
                f"{body.sign}_at_{_region_slug(region)}",
            )
        if isinstance(body, ast.StrongestBody):
            region = _region(body.region)
            return (
                "strongest",
                {"sign": "excites", "region": region},
                f"strongest_at_{_region_slug(region)}",
            )
        if isinstance(body, ast.RankBody):
            k = int(float(body.k.value))
            suffix = "" if body.polarity == "any" else f"_{body.polarity}"
            return "rank", {"k": k, "polarity": body.polarity}, f"top{k}{suffix}"
        if isinstance(body, ast.ShapeBody):
            orientation = _finite(float(evaluate(body.orientation, env)), body.span)
            return (
                "shape",
                {"sign": body.sign, "shape": body.shape, "orientation": orientation},
                f"{body.sign}_along_{body.shape}",
            )
        assert isinstance(body, ast.EquivarianceBody)
        period = (
            _finite(float(evaluate(body.period, env)), body.span)
            if body.period is not None
            else None
        )
        return (
            "equivariance",
            {"transform": body.transform.text, "param": body.param.text, "period": period},
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
        activation = {
            "test": act.test,
            "stimulus": {
                "name": act.stimulus.name.text,
                "args": {n.text: evaluate(e, env) for n, e in act.stimulus.args},
            },
            "param": act.param.text if act.param else None,
            "value": evaluate(act.value, env) if act.value is not None else None,
            "tolerance": evaluate(act.tolerance, env) if act.tolerance is not None else None,
        }
        if act.read == "pre":  # absent: after the nonlinearity, the default
            activation["read"] = "pre"
        stim_slug = act.stimulus.name.text + ("_pre" if act.read == "pre" else "")
        if isinstance(stmt, ast.ExpectStmt):
            word = ACTIVATION_RULE_WORDS[act.test]
            self.add(
                f"{subject}.{act.test}_{stim_slug}",
                stmt.claim_id,
                env,
                kind="activation",
                text=f"expect {subject} {activation_text(act)}",
                subjects=(subject,),
                args={"subject": subject, **activation},
                thresholds=self.thresholds(word, stmt.options),
                span=stmt.span,
                origin=origin,
            )
            return
        edits = tuple(self.edit(e, env) for e in stmt.edits)
        edit_slug = "+".join(_edit_slug(e) for e in edits)
        self.add(
            f"{subject}.{act.test}_{stim_slug}.after.{edit_slug}",
            stmt.claim_id,
            env,
            kind="prediction",
            text=(
                f"predict {', '.join(edit_text(e) for e in stmt.edits)}: {subject} "
                f"{activation_text(act)} {change_text(stmt.change, stmt.size)}"
            ),
            subjects=(subject,),
            args={
                "subject": subject,
                "edits": edits,
                "activation": activation,
                "change": stmt.change,
                "size": _size(stmt.size),
            },
            thresholds=self.thresholds("predict", stmt.options),
            span=stmt.span,
            origin=origin,
        )

    def covers_stmt(self, stmt: ast.ExpectStmt, env: Env, origin: Span | None) -> None:
        """`expect F covers P in W bins [on S]`: one claim about the family as a whole."""
        family = self.node(stmt.subject, env)
        act = stmt.activation
        assert act.param is not None and act.value is not None
        stimulus = None
        if act.stimulus is not None:
            stimulus = {
                "name": act.stimulus.name.text,
                "args": {n.text: evaluate(e, env) for n, e in act.stimulus.args},
            }
        self.add(
            f"{family}.covers_{act.param.text}_{float(evaluate(act.value, env)):g}",
            stmt.claim_id,
            env,
            kind="coverage",
            text=f"expect {family} {activation_text(act)}",
            subjects=(family,),
            args={
                "subject": family,
                "test": "covers",
                "param": act.param.text,
                "bin": float(evaluate(act.value, env)),
                "stimulus": stimulus,
                "read": act.read,
            },
            thresholds=self.thresholds("covers", stmt.options),
            span=stmt.span,
            origin=origin,
        )

    def edit(self, edit: ast.Edit, env: Env) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": edit.kind, "part": edit.part}
        if edit.target is not None:
            data["target"] = self.node(edit.target, env)
        if edit.edge is not None:
            data["edge"] = (self.node(edit.edge[0], env), self.node(edit.edge[1], env))
        if edit.factor is not None:
            data["factor"] = float(edit.factor.value)
        return data


def _size(size: ast.ChangeSize | None) -> dict[str, Any] | None:
    """A change's size as data: percentages become fractions (`20%` -> 0.2)."""
    if size is None:
        return None
    value = float(size.value.value)
    return {"kind": size.kind, "value": value / 100 if size.value.unit == "%" else value}


def _finite(value: float, span: Span) -> float:
    """E108 for arithmetic that overflowed (`o * 1e300`): the IR and its JSON hold no inf."""
    if math.isfinite(value):
        return value
    raise DiagnosticError(
        [Diagnostic(d.E_BAD_VALUE, f"this value is not a finite number ({value})", span)]
    )


def _region(region: ast.Region) -> dict[str, Any]:
    if region.name is not None:
        return {"name": region.name.text}
    assert region.rows is not None
    rows = (int(float(region.rows[0].value)), int(float(region.rows[1].value)))
    out: dict[str, Any] = {"rows": rows}
    if region.cols is not None:
        out["cols"] = (int(float(region.cols[0].value)), int(float(region.cols[1].value)))
    return out


def _region_slug(region: dict[str, Any]) -> str:
    if "name" in region:
        return str(region["name"])
    slug = "rows{}-{}".format(*region["rows"])
    if "cols" in region:
        slug += "_cols{}-{}".format(*region["cols"])
    return slug


def _edit_slug(edit: dict[str, Any]) -> str:
    if edit["kind"] == "ablate":
        return f"ablate_{edit['target']}"
    part = "" if edit["part"] == "all" else f"{edit['part']}_"
    return f"{edit['kind']}_{part}{edit['edge'][0]}->{edit['edge'][1]}"


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
