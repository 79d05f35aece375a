"""Resolve: parsed files -> a `Resolved` spec (names bound, families typed, claims checked).

Input: a `Program` (the main spec and its imports). Output: the spec's features
and families as IR objects, its spec-wide thresholds, and the claim statements
whose every name, region, statistic and expression type has been checked. Every
error in the program is reported at once, sorted by position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from circuitdsl.language import diagnostics as d
from circuitdsl.language import ir
from circuitdsl.language.claims import NAMED_REGIONS, RULES, TRANSFORMS
from circuitdsl.language.diagnostics import Diagnostic, DiagnosticError, Span, did_you_mean
from circuitdsl.language.kinds import ACTIVATION_RULE_WORDS, CompareClaim
from circuitdsl.language.loader import Program
from circuitdsl.language.stimuli import CATALOGUE
from circuitdsl.language.syntax import ast
from circuitdsl.language.syntax.fmt import ref_text

ClaimStatement = (
    ast.ClaimStmt
    | ast.CompareStmt
    | ast.WithinStmt
    | ast.BandingStmt
    | ast.ProportionStmt
    | ast.ForStmt
    | ast.ExpectStmt
    | ast.PredictStmt
)

# Functions allowed in conditions: name -> (argument types, result type).
FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "angle_between": (("angle", "angle"), "angle"),  # smallest difference mod 360, in [0, 180]
    "orientation_between": (("angle", "angle"), "angle"),  # mod 180, in [0, 90]
    "abs": (("number",), "number"),
}


@dataclass
class Resolved:
    """A spec whose names and types are all known; the input of `compile`."""

    name: str
    description: str | None
    citations: tuple[str, ...]
    model: str | None
    path: str
    features: dict[str, ir.Feature]
    families: dict[str, ir.Family]
    thresholds: dict[str, tuple[ir.Threshold, ...]]
    statements: tuple[ClaimStatement, ...]
    sources: tuple[str, ...] = ()
    alpha: float | None = None  # `alpha A`: the spec's level for aggregate verdicts
    preprocess: str | None = None


@dataclass
class _Scope:
    """Names visible in one file: features and families, with where each was defined."""

    features: dict[str, ir.Feature] = field(default_factory=dict)
    families: dict[str, ir.Family] = field(default_factory=dict)
    defined_at: dict[str, Span] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.features) | set(self.families)

    def defines(self, name: str) -> bool:
        """`name in names()` without building the set (resolve asks once per reference)."""
        return name in self.features or name in self.families


class _Resolver:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.errors: list[Diagnostic] = []
        self._module_scopes: dict[str, _Scope] = {}

    def error(
        self,
        code: str,
        message: str,
        span: Span | None,
        help: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.errors.append(Diagnostic(code, message, span, help=help, notes=notes))

    def preprocess(self, name: ast.Name | None) -> str | None:
        """The `preprocess P` word of a `model` line: one of `ir.PREPROCESS_NAMES`."""
        if name is None:
            return None
        if name.text not in ir.PREPROCESS_NAMES:
            hint = did_you_mean(name.text, ir.PREPROCESS_NAMES)
            self.error(
                d.E_PREPROCESS,
                f"unknown preprocessing `{name.text}`",
                name.span,
                help=(hint + "; " if hint else "")
                + "choose one of "
                + ", ".join(f"`{p}`" for p in ir.PREPROCESS_NAMES),
            )
            return None
        return name.text

    # ---- declarations ------------------------------------------------------------
    def scope_of(self, spec: ast.Spec) -> _Scope:
        """The declarations of one file, imports first (memoised per file)."""
        if spec.path in self._module_scopes:
            return self._module_scopes[spec.path]
        scope = _Scope()
        self._module_scopes[spec.path] = scope
        for stmt in spec.statements:
            if isinstance(stmt, ast.ImportDecl):
                self.import_into(scope, stmt)
            elif isinstance(stmt, ast.FeatureDecl):
                feature = self.feature(stmt)
                if self.declare(scope, stmt.name):
                    scope.features[feature.name] = feature
            elif isinstance(stmt, ast.FamilyDecl):
                result = self.family(stmt)
                if self.declare(scope, stmt.name):
                    family, members = result
                    scope.families[family.name] = family
                    scope.features.update({m.name: m for m in members})
        return scope

    def declare(self, scope: _Scope, name: ast.Name) -> bool:
        if name.text in scope.defined_at:
            first = scope.defined_at[name.text]
            self.error(
                d.E_DUPLICATE,
                f"`{name.text}` is defined twice",
                name.span,
                help="rename one of them",
                notes=(f"first defined at {first}",),
            )
            return False
        scope.defined_at[name.text] = name.span
        return True

    def import_into(self, scope: _Scope, decl: ast.ImportDecl) -> None:
        source = self.scope_of(self.program.target(decl))
        wanted = (
            [n.text for n in decl.names]
            if decl.names is not None
            else sorted(source.families)
            + sorted(n for n, f in source.features.items() if f.family is None)
        )
        for name in decl.names or ():
            if not source.defines(name.text):
                self.error(
                    d.E_UNKNOWN_NAME,
                    f"`{decl.path}` defines no `{name.text}`",
                    name.span,
                    help=did_you_mean(name.text, source.names()),
                )
        for text in wanted:
            if not source.defines(text):
                continue
            where = (
                decl.span
                if decl.names is None
                else next(n.span for n in decl.names if n.text == text)
            )
            same = scope.families.get(text) or scope.features.get(text)
            if same is not None and same == (
                source.families.get(text) or source.features.get(text)
            ):
                continue  # the same declaration reached twice (diamond imports) is no conflict
            if not self.declare(scope, ast.Name(text, where)):
                continue
            if text in source.families:
                family = source.families[text]
                scope.families[text] = family
                scope.features.update({m: source.features[m] for m in family.members})
            else:
                scope.features[text] = source.features[text]

    def channel(self, lit: ast.Literal, what: str = "a channel") -> int | None:
        value = lit.value
        if (
            isinstance(value, str)
            or lit.unit != "number"
            or not math.isfinite(value)  # 400 digits read as inf; int(inf) raises
            or value != int(value)
            or value < 0
        ):
            self.error(
                d.E_BAD_VALUE,
                f"{what} must be a non-negative whole number, not `{lit.raw or value}`",
                lit.span,
            )
            return None
        return int(value)

    def selector(self, sel: ast.Selector, what: str) -> None:
        """Check a `top K of LAYER by S [over P]` declaration (chosen later, on a model)."""
        k = sel.count.value
        if not isinstance(k, float) or not math.isfinite(k) or k != int(k) or k < 1:
            self.error(
                d.E_BAD_VALUE, f"`top {sel.count.raw}` needs a whole number >= 1", sel.count.span
            )
        elif what == "feature" and k != 1:
            self.error(
                d.E_BAD_VALUE,
                f"a feature is one channel, but this selects the top {sel.count.raw}",
                sel.count.span,
                help="write `top 1 of ...`, or declare a family: `family NAME = top K of ...`",
            )
        params = self.stimulus_params(sel.stimulus)
        if params is None:
            return
        for _, expr in sel.stimulus.args:
            if not isinstance(expr, ast.Literal):
                self.error(
                    d.E_BAD_VALUE,
                    "a selector's stimulus takes plain values (it is chosen once per model)",
                    getattr(expr, "span", sel.span),
                )
        if sel.over is not None:
            self.swept_param(sel.stimulus, sel.over, params)

    def stimulus_params(self, stimulus: ast.Stimulus) -> tuple[str, ...] | None:
        """The stimulus's parameter names, after checking it and its arguments exist."""

        name = stimulus.name.text
        if name not in CATALOGUE:
            self.error(
                d.E_UNKNOWN_NAME,
                f"unknown stimulus `{name}`",
                stimulus.name.span,
                help=did_you_mean(name, CATALOGUE) or f"stimuli: {', '.join(CATALOGUE)}",
            )
            return None
        params = tuple(CATALOGUE[name].param_names)
        for arg, _ in stimulus.args:
            if arg.text not in params:
                self.error(
                    d.E_UNKNOWN_PARAM,
                    f"stimulus `{name}` has no parameter `{arg.text}`",
                    arg.span,
                    help=did_you_mean(arg.text, params) or f"its parameters: {', '.join(params)}",
                )
        return params

    def swept_param(self, stimulus: ast.Stimulus, param: ast.Name, params: tuple[str, ...]) -> None:
        if param.text not in params:
            self.error(
                d.E_UNKNOWN_PARAM,
                f"stimulus `{stimulus.name.text}` has no parameter `{param.text}` to sweep",
                param.span,
                help=did_you_mean(param.text, params) or f"its parameters: {', '.join(params)}",
            )

    def feature(self, decl: ast.FeatureDecl) -> ir.Feature:
        """The feature; after an error, a best-effort one so its uses report nothing more."""
        if decl.select is not None:
            # Declared by behaviour: the channel is chosen when the spec meets a model
            # (`circuitdsl.measure.select`); until then the feature has no channels.
            self.selector(decl.select, "feature")
            return ir.Feature(
                decl.name.text, decl.select.layer.text, (), (), decl.label, None, (), decl.span
            )
        layers = {t.layer.text for t in decl.terms}
        if len(layers) > 1:
            self.error(
                d.E_BAD_VALUE,
                "a direction combines channels of one layer, "
                f"but `{decl.name.text}` uses {', '.join(sorted(layers))}",
                decl.span,
                help="split it into one feature per layer",
            )
        channels: list[int] = []
        coefficients: list[float] = []
        for term in decl.terms:
            channel = self.channel(term.channel)
            if channel is None:
                continue
            if channel in channels:
                self.error(
                    d.E_DUPLICATE_CHANNEL,
                    f"channel {channel} appears twice in `{decl.name.text}`",
                    term.span,
                    help="combine the two terms",
                )
                continue
            coefficient = float(term.coefficient.value) if term.coefficient else 1.0
            channels.append(channel)
            coefficients.append(-coefficient if term.negated else coefficient)
        return ir.Feature(
            decl.name.text,
            decl.terms[0].layer.text,
            tuple(channels),
            tuple(coefficients),
            decl.label,
            None,
            (),
            decl.span,
        )

    def family(self, decl: ast.FamilyDecl) -> tuple[ir.Family, list[ir.Feature]]:
        param_types: list[tuple[str, str]] = []
        for p in decl.params:
            if p.type.text not in ir.PARAM_TYPES:
                self.error(
                    d.E_PARAM_TYPE,
                    f"unknown parameter type `{p.type.text}`",
                    p.type.span,
                    help=did_you_mean(p.type.text, ir.PARAM_TYPES)
                    or f"use one of {', '.join(ir.PARAM_TYPES)}",
                )
            if any(p.name.text == q for q, _ in param_types):
                self.error(
                    d.E_DUPLICATE, f"parameter `{p.name.text}` is declared twice", p.name.span
                )
            param_types.append((p.name.text, p.type.text))
        members: list[ir.Feature] = []
        seen: dict[int, Span] = {}
        for m in decl.members:
            channel = self.channel(m.channel)
            if channel is None:
                continue
            if channel in seen:
                self.error(
                    d.E_DUPLICATE_CHANNEL,
                    f"channel {channel} is listed twice in family `{decl.name.text}`",
                    m.channel.span,
                    notes=(f"first listed at {seen[channel]}",),
                )
                continue
            seen[channel] = m.channel.span
            if len(m.values) != len(param_types):
                self.error(
                    d.E_PARAM_ARITY,
                    f"member {channel} of `{decl.name.text}` gives "
                    f"{len(m.values)} value(s) but the family has {len(param_types)} "
                    "parameter(s)",
                    m.span,
                    help=_member_example(param_types, channel),
                )
                continue
            params = []
            for (pname, ptype), lit in zip(param_types, m.values, strict=True):
                value = self.param_value(pname, ptype, lit)
                if value is None:
                    continue
                params.append(ir.Param(pname, ptype, value))
            members.append(
                ir.Feature(
                    f"{decl.name.text}[{channel}]",
                    decl.layer.text,
                    (channel,),
                    (1.0,),
                    None,
                    decl.name.text,
                    tuple(params),
                    m.span,
                )
            )
        if decl.select is not None:
            self.selector(decl.select, "family")
            over = decl.select.over.text if decl.select.over is not None else None
            for p in decl.params:
                if p.name.text != over:
                    self.error(
                        d.E_UNKNOWN_PARAM,
                        f"family `{decl.name.text}` is chosen by behaviour and can only carry"
                        f" the swept parameter, not `{p.name.text}`",
                        p.span,
                        help="add `over PARAM` to the selector, or drop the parameter list",
                    )
                elif p.type.text not in ("angle", "number"):
                    self.error(
                        d.E_PARAM_TYPE,
                        f"a swept parameter is an angle or a number, not {p.type.text}",
                        p.type.span,
                    )
        elif not decl.members:
            self.error(
                d.E_BAD_VALUE,
                f"family `{decl.name.text}` has no members",
                decl.span,
                help="list its channels inside the braces: `{ 342: 22.5deg, ... }`",
            )
        family = ir.Family(
            decl.name.text,
            decl.layer.text,
            tuple(param_types),
            tuple(m.name for m in members),
            decl.label,
            decl.span,
        )
        return family, members

    def param_value(self, name: str, ptype: str, lit: ast.Literal) -> float | str | None:
        expected_unit = {"angle": "angle", "number": "number", "label": "string"}.get(ptype)
        if expected_unit is None:
            return None  # unknown type, already reported
        if lit.unit != expected_unit:
            hint = {
                ("angle", "number"): f"angles carry a unit: write `{lit.raw}deg`",
                ("number", "angle"): "this parameter is a plain number; drop the `deg`",
                ("label", "number"): "labels are words, like `left`",
            }.get((ptype, lit.unit))
            self.error(
                d.E_PARAM_TYPE,
                f"parameter `{name}` is {_article(ptype)} {ptype}, "
                f"but `{lit.raw}` is {_article(_unit_type(lit.unit))} "
                f"{_unit_type(lit.unit)}",
                lit.span,
                help=hint,
            )
            return None
        return lit.value

    # ---- thresholds ----------------------------------------------------------------
    def threshold(self, word: str, opt: ast.ThresholdOption) -> ir.Threshold | None:
        rule = RULES[word]
        if opt.op == "=":  # a setting, not a threshold: only `along arc θ (radius = R)`
            if word == "along" and opt.stat.text == "radius":
                if opt.value.unit != "number" or float(opt.value.value) <= 0:
                    self.error(
                        d.E_BAD_VALUE, "an arc's radius is a positive number", opt.value.span
                    )
                return None
            self.error(
                d.E_UNKNOWN_STAT,
                f"`{opt.stat.text} = ...` sets nothing on `{word}` claims",
                opt.span,
                help="`=` sets an arc's radius (`along arc 45deg (radius = 3)`); a threshold"
                " compares: `(z >= 2)`",
            )
            return None
        if opt.stat.text not in rule.stats:
            self.error(
                d.E_UNKNOWN_STAT,
                f"`{word}` claims have no statistic `{opt.stat.text}`",
                opt.stat.span,
                help=did_you_mean(opt.stat.text, rule.stats)
                or f"their statistics: {', '.join(rule.stats)}",
            )
            return None
        if opt.value.unit == "string":
            self.error(d.E_BAD_VALUE, "a threshold is a number", opt.value.span)
            return None
        return ir.Threshold(opt.stat.text, opt.op, float(opt.value.value))

    def alpha(self, lit: ast.Literal | None) -> float | None:
        """A significance level: a plain number strictly between 0 and 1."""
        if lit is None:
            return None
        if lit.unit != "number" or not 0.0 < float(lit.value) < 1.0:
            self.error(
                d.E_BAD_VALUE,
                f"`alpha` is a significance level between 0 and 1, not `{lit.raw}`",
                lit.span,
                help="e.g. `alpha 0.01` (the default) or `alpha 0.001`",
            )
            return None
        return float(lit.value)

    def check_options(self, word: str, options: tuple[ast.ThresholdOption, ...]) -> None:
        for opt in options:
            self.threshold(word, opt)

    # ---- claims ---------------------------------------------------------------------
    def check_statement(
        self, stmt: ClaimStatement, scope: _Scope, variables: dict[str, str | None]
    ) -> None:
        if isinstance(stmt, ast.ClaimStmt):
            self.check_claim(stmt, scope, variables)
            self.alpha(stmt.alpha)
        elif isinstance(stmt, ast.CompareStmt):
            if stmt.grouped:
                self.error(
                    d.E_SYNTAX,
                    "a comparison is between two single connections",
                    stmt.span,
                    help="write `a -> c stronger than b -> c`",
                )
            if stmt.measure == "weak":
                self.error(
                    d.E_SYNTAX,
                    "`weak more than` is not a comparison",
                    stmt.span,
                    help="write `excites more than`, `inhibits more than` or `stronger than`",
                )
                return
            for ref in (*stmt.stronger, *stmt.weaker):
                self.ref(ref, scope, variables)
            self.check_options(CompareClaim.word_of(stmt.measure), stmt.options)
        elif isinstance(stmt, ast.WithinStmt):
            self.ref(stmt.subject, scope, variables)
            self.check_options("within", stmt.options)
        elif isinstance(stmt, ast.BandingStmt):
            for direction in (stmt.direction, stmt.than):
                if direction is not None and direction.text not in ("horizontal", "vertical"):
                    self.error(
                        d.E_BAD_VALUE,
                        f"banding is `horizontal` or `vertical`, not `{direction.text}`",
                        direction.span,
                        help=did_you_mean(direction.text, ("horizontal", "vertical")),
                    )
            if stmt.than is not None and stmt.than.text == stmt.direction.text:
                self.error(
                    d.E_BAD_VALUE,
                    "relative banding compares the two directions",
                    stmt.than.span,
                    help="write `banded horizontal more than vertical` (or the reverse)",
                )
            self.check_options("banded_more" if stmt.than else "banded", stmt.options)
        elif isinstance(stmt, ast.ProportionStmt):
            self.ref(stmt.target, scope, variables)
            if float(stmt.k.value) < 1 or float(stmt.k.value) != int(float(stmt.k.value)):
                self.error(
                    d.E_BAD_VALUE,
                    f"`top {stmt.k.raw}`: the number of inputs is a whole number >= 1",
                    stmt.k.span,
                )
            self.check_options("most", stmt.options)
        elif isinstance(stmt, ast.ForStmt):
            self.alpha(stmt.alpha)
            inner: dict[str, str | None] = dict(variables)
            for b in stmt.bindings:
                if b.family.text not in scope.families:
                    if b.family.text in scope.features:
                        self.error(
                            d.E_NOT_A_FAMILY,
                            f"`{b.family.text}` is a single feature, not a family",
                            b.family.span,
                            help="`for` ranges over the members of a family",
                        )
                    else:
                        self.error(
                            d.E_UNKNOWN_NAME,
                            f"no family named `{b.family.text}`",
                            b.family.span,
                            help=did_you_mean(b.family.text, scope.families),
                        )
                    inner[b.var.text] = None  # bound, so its uses report nothing further
                    continue
                if b.var.text in inner:
                    self.error(d.E_DUPLICATE, f"variable `{b.var.text}` is bound twice", b.var.span)
                inner[b.var.text] = b.family.text
            if stmt.where is not None:
                self.expect_type(stmt.where, "bool", scope, inner)
            for body in stmt.body:
                self.check_statement(cast(ClaimStatement, body), scope, inner)
        elif isinstance(stmt, (ast.ExpectStmt, ast.PredictStmt)):
            self.ref(stmt.subject, scope, variables)
            self_family = self.family_of(stmt.subject, scope, variables)
            if stmt.activation.test == "covers" and not (
                stmt.subject.channel is None
                and stmt.subject.name.text not in variables
                and stmt.subject.name.text in scope.families
            ):
                self.error(
                    d.E_BAD_VALUE,
                    f"`covers` is a claim about a family as a whole; `{ref_text(stmt.subject)}`"
                    " is not a family",
                    stmt.subject.span,
                    help="name a family: `expect curve covers orientation in 45deg bins`",
                )
            self.check_activation(stmt.activation, scope, variables, self_family)
            word = (
                "predict"
                if isinstance(stmt, ast.PredictStmt)
                else ACTIVATION_RULE_WORDS[stmt.activation.test]
            )
            self.check_options(word, stmt.options)
            if isinstance(stmt, ast.PredictStmt):
                self.check_size(stmt)
                for edit in stmt.edits:
                    for ref in (edit.target,) if edit.target else edit.edge or ():
                        self.ref(ref, scope, variables)

    def check_size(self, stmt: ast.PredictStmt) -> None:
        """A change's size must be one that some measurement could meet."""
        size = stmt.size
        if size is None:
            return
        v = float(size.value.value)
        if size.kind == "by_at_least" and v <= 0:
            self.error(
                d.E_BAD_VALUE,
                f"a change by at least {v:g}% is no change",
                size.span,
                help="give a percentage above 0, or drop the size",
            )
        elif size.kind == "within" and v < 0:
            self.error(d.E_BAD_VALUE, "a tolerance cannot be negative", size.span)
        elif size.kind == "to_below" and not 0 < v < 1:
            self.error(
                d.E_BAD_VALUE,
                f"`decreases to below {v:g} of` is not a decrease",
                size.span,
                help="give a ratio between 0 and 1 (0.5: to less than half the value before)",
            )
        elif size.kind == "to_above" and v <= 1:
            self.error(
                d.E_BAD_VALUE,
                f"`increases to above {v:g} of` is not an increase",
                size.span,
                help="give a ratio above 1 (2: to more than twice the value before)",
            )

    def check_claim(
        self, stmt: ast.ClaimStmt, scope: _Scope, variables: dict[str, str | None]
    ) -> None:
        for ref in (*stmt.sources, stmt.target):
            self.ref(ref, scope, variables)
        if stmt.where is not None:
            self.expect_type(stmt.where, "bool", scope, variables)
        for item in stmt.items:
            body = item.body
            word = _word_of(body)
            self.check_options(word, item.options)
            if isinstance(body, (ast.RegionBody, ast.StrongestBody)):
                self.region(body.region)
            elif isinstance(body, ast.RankBody):
                k = self.channel(body.k, "k")
                if k == 0:
                    self.error(d.E_BAD_VALUE, "`top 0` ranks nothing", body.k.span)
            elif isinstance(body, ast.ShapeBody):
                self.expect_type(body.orientation, "angle", scope, variables)
            elif isinstance(body, ast.EquivarianceBody):
                self.equivariance(stmt, body, scope)
            if stmt.union and not isinstance(body, ast.SignBody):
                self.error(
                    d.E_SYNTAX,
                    "`{a, b} -> c` takes only excites / inhibits / weak",
                    item.span,
                    help="state the other claims one source at a time",
                )

    def equivariance(self, stmt: ast.ClaimStmt, body: ast.EquivarianceBody, scope: _Scope) -> None:
        if body.transform.text not in TRANSFORMS:
            self.error(
                d.E_BAD_VALUE,
                f"unknown transform `{body.transform.text}`",
                body.transform.span,
                help=did_you_mean(body.transform.text, TRANSFORMS)
                or f"use one of {', '.join(TRANSFORMS)}",
            )
        for ref in (*stmt.sources, stmt.target):
            fam = scope.families.get(ref.name.text) if ref.channel is None else None
            if fam is None:
                self.error(
                    d.E_NOT_A_FAMILY,
                    "equivariance is a claim between two families",
                    ref.span,
                    help="name families on both sides of `->`",
                )
                continue
            if body.param.text not in dict(fam.param_types):
                self.error(
                    d.E_UNKNOWN_PARAM,
                    f"family `{fam.name}` has no parameter `{body.param.text}`",
                    body.param.span,
                    help=did_you_mean(body.param.text, dict(fam.param_types)),
                )
        if body.period is not None:
            self.expect_type(body.period, "angle", scope, {})

    def region(self, region: ast.Region) -> None:
        if region.name is not None:
            if region.name.text not in NAMED_REGIONS:
                self.error(
                    d.E_BAD_VALUE,
                    f"unknown region `{region.name.text}`",
                    region.name.span,
                    help=did_you_mean(region.name.text, NAMED_REGIONS)
                    or f"use one of {', '.join(NAMED_REGIONS)} or `rows 0..1`",
                )
            return
        for pair in (region.rows, region.cols):
            if pair is None:
                continue
            lo, hi = (self.channel(x, "a kernel index") for x in pair)
            if lo is not None and hi is not None and lo > hi:
                self.error(
                    d.E_BAD_VALUE,
                    f"empty range `{lo}..{hi}`",
                    pair[0].span,
                    help=f"write `{hi}..{lo}`",
                )

    def ref(self, ref: ast.Ref, scope: _Scope, variables: dict[str, str | None]) -> None:
        name = ref.name.text
        if name in variables:
            if ref.channel is not None:
                self.error(
                    d.E_SYNTAX,
                    f"`{name}` is already one member of `{variables[name]}`",
                    ref.span,
                    help=f"write `{name}`",
                )
            return
        if ref.channel is not None:
            if name not in scope.families:
                self.unknown(ref.name, scope, variables, "family")
                return
            channel = self.channel(ref.channel)
            member = f"{name}[{channel}]"
            if channel is not None and member not in scope.features:
                members = ", ".join(
                    str(scope.features[m].channels[0]) for m in scope.families[name].members
                )
                self.error(
                    d.E_UNKNOWN_NAME,
                    f"`{name}` has no member {channel}",
                    ref.span,
                    help=f"its members: {members}",
                )
            return
        if not scope.defines(name):
            self.unknown(ref.name, scope, variables, "feature or family")

    def unknown(
        self, name: ast.Name, scope: _Scope, variables: dict[str, str | None], what: str
    ) -> None:
        candidates = (
            set(scope.families)
            if what == "family"
            else (
                {n for n, f in scope.features.items() if f.family is None}
                | set(scope.families)
                | set(variables)
            )
        )
        self.error(
            d.E_UNKNOWN_NAME,
            f"no {what} named `{name.text}`",
            name.span,
            help=did_you_mean(name.text, candidates),
        )

    def family_of(
        self, ref: ast.Ref, scope: _Scope, variables: dict[str, str | None]
    ) -> str | None:
        if ref.name.text in variables:
            return variables[ref.name.text]
        if ref.name.text in scope.families:
            return ref.name.text
        feature = scope.features.get(ref.name.text)
        return feature.family if feature else None

    def check_stimulus(self, act: ast.Activation) -> None:
        """The stimulus, its arguments and the tested parameter or aspect exist."""
        if act.stimulus is None:  # `covers` without `on S`: the selector's stimulus
            return
        params = self.stimulus_params(act.stimulus)
        if params is None:
            return
        if act.test in ("prefers", "covers") and act.param is not None:
            self.swept_param(act.stimulus, act.param, params)
        aspects = ("colour", "color", "brightness")
        if act.test == "invariant" and act.param is not None and act.param.text not in aspects:
            self.error(
                d.E_BAD_VALUE,
                f"invariance to `{act.param.text}` is not measured",
                act.param.span,
                help=did_you_mean(act.param.text, aspects) or "aspects: colour, brightness",
            )

    def check_activation(
        self,
        act: ast.Activation,
        scope: _Scope,
        variables: dict[str, str | None],
        self_family: str | None,
    ) -> None:
        inner = dict(variables)
        if self_family is not None:
            inner["self"] = self_family
        self.check_stimulus(act)
        if act.test == "covers":
            self.check_covers(act, scope, inner)
            return
        assert act.stimulus is not None
        for _, expr in act.stimulus.args:
            self.type_of(expr, scope, inner)
        for value in (act.value, act.tolerance):
            if value is not None:
                self.type_of(value, scope, inner)

    def check_covers(
        self, act: ast.Activation, scope: _Scope, variables: dict[str, str | None]
    ) -> None:
        """`covers P in W bins`: a positive bin width; stimulus arguments are constants."""
        assert isinstance(act.value, ast.Literal)
        if float(act.value.value) <= 0:
            self.error(
                d.E_BAD_VALUE,
                "the bin width must be positive",
                act.value.span,
                help="e.g. `covers orientation in 45deg bins`",
            )
        for _, expr in act.stimulus.args if act.stimulus is not None else ():
            self.type_of(expr, scope, {})

    # ---- expression types ------------------------------------------------------------
    def expect_type(
        self, expr: ast.Expr, want: str, scope: _Scope, variables: dict[str, str | None]
    ) -> None:
        got = self.type_of(expr, scope, variables)
        if got is not None and got != want:
            help_ = (
                "write the angle with a unit, like `30deg`"
                if (want == "angle" and got == "number")
                else None
            )
            self.error(
                d.E_TYPE,
                f"expected {_article(want)} {_type_word(want)} here, "
                f"found {_article(got)} {_type_word(got)}",
                expr.span,
                help=help_,
            )

    def type_of(
        self, expr: ast.Expr, scope: _Scope, variables: dict[str, str | None]
    ) -> str | None:
        """The static type of an expression (None once an error has been reported)."""
        if isinstance(expr, ast.Literal):
            return {"string": "label"}.get(expr.unit, expr.unit)
        if isinstance(expr, ast.Var):
            if expr.name.text in variables:
                fam = variables[expr.name.text]
                params = dict(scope.families[fam].param_types) if fam else {}
                self.error(
                    d.E_TYPE,
                    f"`{expr.name.text}` is a feature; compare one of its parameters",
                    expr.span,
                    help=f"for example `{expr.name.text}.{next(iter(params), 'param')}`",
                )
                return None
            self.error(
                d.E_UNKNOWN_NAME,
                f"no variable named `{expr.name.text}`",
                expr.span,
                help=did_you_mean(expr.name.text, variables)
                or f'if you meant the label, quote it: "{expr.name.text}"',
            )
            return None
        if isinstance(expr, ast.Attr):
            if expr.var.text not in variables:
                self.error(
                    d.E_UNKNOWN_NAME,
                    f"no variable named `{expr.var.text}`",
                    expr.var.span,
                    help=did_you_mean(expr.var.text, variables),
                )
                return None
            family_name = variables[expr.var.text]
            if family_name is None:
                return None
            family = scope.families[family_name]
            params = dict(family.param_types)
            if expr.attr.text not in params:
                self.error(
                    d.E_UNKNOWN_PARAM,
                    f"family `{family.name}` has no parameter `{expr.attr.text}`",
                    expr.attr.span,
                    help=did_you_mean(expr.attr.text, params)
                    or (f"its parameters: {', '.join(params)}" if params else None),
                )
                return None
            return params[expr.attr.text]
        if isinstance(expr, ast.Call):
            if expr.func.text not in FUNCTIONS:
                self.error(
                    d.E_UNKNOWN_NAME,
                    f"unknown function `{expr.func.text}`",
                    expr.func.span,
                    help=did_you_mean(expr.func.text, FUNCTIONS)
                    or f"functions: {', '.join(FUNCTIONS)}",
                )
                return None
            arg_types, result = FUNCTIONS[expr.func.text]
            if len(expr.args) != len(arg_types):
                self.error(
                    d.E_TYPE,
                    f"`{expr.func.text}` takes {len(arg_types)} argument(s), not {len(expr.args)}",
                    expr.span,
                )
                return None
            for arg, want in zip(expr.args, arg_types, strict=True):
                if expr.func.text == "abs":
                    return self.type_of(arg, scope, variables)
                self.expect_type(arg, want, scope, variables)
            return result
        if isinstance(expr, ast.Unary):
            inner = self.type_of(expr.operand, scope, variables)
            want_unary: str | None = "bool" if expr.op == "not" else None
            if inner is None:
                return None
            if want_unary and inner != want_unary:
                self.error(d.E_TYPE, "`not` needs a condition", expr.span)
                return None
            if expr.op == "-" and inner not in ("number", "angle"):
                self.error(d.E_TYPE, f"cannot negate {_article(inner)} {inner}", expr.span)
                return None
            return inner
        assert isinstance(expr, ast.Binary)
        left = self.type_of(expr.left, scope, variables)
        right = self.type_of(expr.right, scope, variables)
        if left is None or right is None:
            return None
        return self.binary_type(expr, left, right)

    def binary_type(self, expr: ast.Binary, left: str, right: str) -> str | None:
        op = expr.op
        if op in ("and", "or"):
            if left == right == "bool":
                return "bool"
        elif op in ("==", "!="):
            if left == right:
                return "bool"
        elif op in ("<", "<=", ">", ">="):
            if left == right and left in ("number", "angle"):
                return "bool"
        elif op in ("+", "-"):
            if left == right and left in ("number", "angle"):
                return left
        elif op in ("*", "/"):
            if left == right == "number":
                return "number"
            if {left, right} == {"angle", "number"} and (op == "*" or left == "angle"):
                return "angle"
        help_ = None
        if {left, right} == {"angle", "number"}:
            help_ = "write angles with a unit, like `30deg`"
        self.error(
            d.E_TYPE,
            f"cannot apply `{op}` to {_article(left)} {_type_word(left)} and "
            f"{_article(right)} {_type_word(right)}",
            expr.span,
            help=help_,
        )
        return None


def resolve(program: Program) -> Resolved:
    """Bind every name in `program`; raise `DiagnosticError` with all problems found."""
    resolver = _Resolver(program)
    spec = program.main
    scope = resolver.scope_of(spec)
    name: str | None = None
    description = None
    citations: list[str] = []
    model: str | None = None
    preprocess: str | None = None
    thresholds: dict[str, list[ir.Threshold]] = {}
    alpha: float | None = None
    statements: list[ClaimStatement] = []
    header_seen: dict[str, Span] = {}
    for stmt in spec.statements:
        if isinstance(stmt, (ast.CircuitDecl, ast.ModelDecl)):
            key = "circuit" if isinstance(stmt, ast.CircuitDecl) else "model"
            if key in header_seen:
                resolver.error(
                    d.E_DUPLICATE,
                    f"a spec has one `{key}` line",
                    stmt.span,
                    notes=(f"first given at {header_seen[key]}",),
                )
                continue
            header_seen[key] = stmt.span
            if isinstance(stmt, ast.CircuitDecl):
                name, description = stmt.name.text, stmt.description
            else:
                model = stmt.model
                preprocess = resolver.preprocess(stmt.preprocess)
        elif isinstance(stmt, ast.CiteDecl):
            citations.append(stmt.text)
        elif isinstance(stmt, ast.AlphaDecl):
            alpha = resolver.alpha(stmt.value)
        elif isinstance(stmt, ast.ThresholdDecl):
            word = stmt.word.text
            if word not in RULES:
                resolver.error(
                    d.E_UNKNOWN_STAT,
                    f"no claim is called `{word}`",
                    stmt.word.span,
                    help=did_you_mean(word, RULES) or f"claim words: {', '.join(RULES)}",
                )
                continue
            threshold = resolver.threshold(word, stmt.option)
            if threshold:
                thresholds.setdefault(word, []).append(threshold)
        elif isinstance(stmt, (ast.ImportDecl, ast.FeatureDecl, ast.FamilyDecl)):
            continue
        else:
            resolver.check_statement(stmt, scope, {})
            statements.append(stmt)
    if resolver.errors:
        raise DiagnosticError(resolver.errors)
    return Resolved(
        name=name or Path(spec.path).stem.replace("-", "_").replace(".", "_"),
        description=description,
        citations=tuple(citations),
        model=model,
        path=spec.path,
        features=dict(scope.features),
        families=dict(scope.families),
        thresholds={k: tuple(v) for k, v in thresholds.items()},
        statements=tuple(statements),
        sources=tuple(program.modules),
        alpha=alpha,
        preprocess=preprocess,
    )


def _word_of(body: ast.ClaimBody) -> str:
    if isinstance(body, (ast.SignBody, ast.RegionBody)):
        return body.sign
    return {
        ast.StrongestBody: "strongest",
        ast.RankBody: "among",
        ast.ShapeBody: "along",
        ast.EquivarianceBody: "equivariant",
    }[type(body)]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _type_word(t: str) -> str:
    return {"bool": "condition"}.get(t, t)


def _unit_type(unit: str) -> str:
    return {"string": "label"}.get(unit, unit)


def _member_example(param_types: list[tuple[str, str]], channel: int) -> str:
    examples = {"angle": "45deg", "number": "1.5", "label": "left"}
    values = [examples.get(t, "?") for _, t in param_types]
    if not values:
        return f"write just `{channel}`"
    body = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
    return f"write `{channel}: {body}`"
