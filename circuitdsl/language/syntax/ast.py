"""The abstract syntax tree of a .circ file: frozen dataclasses, each with its span.

The parser builds these and nothing else; names are resolved and types checked
later (resolve.py) on these nodes, never inside Lark callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitdsl.language.diagnostics import Span


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier as written, with where it was written."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Literal:
    """A number (`2`), an angle (`30deg`, stored in degrees) or a string (`"left"`)."""

    value: float | str
    unit: str  # "number" | "angle" | "string"
    span: Span
    raw: str = ""  # as written, so `fmt` keeps `22.5deg` rather than `22.5`


# ---- expressions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Var:
    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    """`a.orientation`: a family parameter of a bound variable."""

    var: Name
    attr: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    func: Name
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" | "not"
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / and or, and the comparisons
    left: Expr
    right: Expr
    span: Span


Expr = Literal | Var | Attr | Call | Unary | Binary

# ---- declarations ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CircuitDecl:
    name: Name
    description: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class CiteDecl:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class ModelDecl:
    """`model NAME [preprocess P]`: the model, and optionally its input transform."""

    model: str
    span: Span
    preprocess: Name | None = None


@dataclass(frozen=True, slots=True)
class ImportDecl:
    """`import "lib.circ"` (names is None: everything) or `from "lib.circ" import a, b`."""

    path: str
    names: tuple[Name, ...] | None
    span: Span


@dataclass(frozen=True, slots=True)
class ThresholdOption:
    """`z >= 1.5`: a statistic, a comparison and a value."""

    stat: Name
    op: str
    value: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class ThresholdDecl:
    """`threshold excites z >= 1.5`: a spec-wide default for one claim word."""

    word: Name
    option: ThresholdOption
    span: Span


@dataclass(frozen=True, slots=True)
class ChannelTerm:
    """`0.8 * mixed4c:447`; the coefficient is None when not written."""

    coefficient: Literal | None
    negated: bool
    layer: Name
    channel: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class FeatureDecl:
    name: Name
    terms: tuple[ChannelTerm, ...]
    label: str | None
    span: Span
    select: Selector | None = None  # declared by behaviour: `terms` is empty


@dataclass(frozen=True, slots=True)
class ParamDecl:
    name: Name
    type: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Member:
    """`342: 22.5deg` or `110: (0deg, 2)` or a bare channel `197`."""

    channel: Literal
    values: tuple[Literal, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class FamilyDecl:
    name: Name
    params: tuple[ParamDecl, ...]
    layer: Name
    label: str | None
    members: tuple[Member, ...]
    span: Span
    select: Selector | None = None  # declared by behaviour: `members` is empty


@dataclass(frozen=True, slots=True)
class Selector:
    """`top 4 of conv2 by curve(radius = 8) over orientation`: the `count` channels of
    `layer` that respond most to the stimulus (swept over `over`, when given); chosen
    when the spec is bound to a model (`circuitdsl.measure.select`)."""

    count: Literal
    layer: Name
    stimulus: Stimulus
    over: Name | None
    span: Span


# ---- claims --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ref:
    """A feature or family by name, or a family member: `curve[379]`."""

    name: Name
    channel: Literal | None
    span: Span


@dataclass(frozen=True, slots=True)
class Region:
    """A named region (`top`) or explicit kernel indices (`rows 0..1 cols 0..4`)."""

    name: Name | None
    rows: tuple[Literal, Literal] | None
    cols: tuple[Literal, Literal] | None
    span: Span


@dataclass(frozen=True, slots=True)
class SignBody:
    sign: str
    span: Span


@dataclass(frozen=True, slots=True)
class RegionBody:
    sign: str
    region: Region
    span: Span


@dataclass(frozen=True, slots=True)
class StrongestBody:
    region: Region
    span: Span


@dataclass(frozen=True, slots=True)
class RankBody:
    k: Literal
    polarity: str  # "any" | "excitatory" | "inhibitory"
    span: Span


@dataclass(frozen=True, slots=True)
class ShapeBody:
    sign: str
    shape: str  # "line" | "arc"
    orientation: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class EquivarianceBody:
    transform: Name
    param: Name
    period: Expr | None
    span: Span


ClaimBody = SignBody | RegionBody | StrongestBody | RankBody | ShapeBody | EquivarianceBody


@dataclass(frozen=True, slots=True)
class ClaimItem:
    """One claim of a claim line, with its own thresholds and optional explicit id."""

    body: ClaimBody
    options: tuple[ThresholdOption, ...]
    claim_id: Name | None
    span: Span


@dataclass(frozen=True, slots=True)
class ClaimStmt:
    """`a -> b : excites at top, inhibits at bottom` (or `{a, b} -> c : ...`)."""

    sources: tuple[Ref, ...]
    union: bool
    target: Ref
    items: tuple[ClaimItem, ...]
    where: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class CompareStmt:
    """`a -> c stronger than b -> c`."""

    stronger: tuple[Ref, Ref]
    weaker: tuple[Ref, Ref]
    options: tuple[ThresholdOption, ...]
    claim_id: Name | None
    grouped: bool  # `{a, b} -> c stronger than ...` is an error reported by resolve
    span: Span


@dataclass(frozen=True, slots=True)
class WithinStmt:
    """`curve within mixed3b_5x5`."""

    subject: Ref
    layer: Name
    options: tuple[ThresholdOption, ...]
    claim_id: Name | None
    span: Span


@dataclass(frozen=True, slots=True)
class BandingStmt:
    """`weights into mixed5b_5x5 : banded horizontal`."""

    layer: Name
    direction: Name
    options: tuple[ThresholdOption, ...]
    claim_id: Name | None
    span: Span


@dataclass(frozen=True, slots=True)
class Binding:
    var: Name
    family: Name
    span: Span


@dataclass(frozen=True, slots=True)
class ForStmt:
    bindings: tuple[Binding, ...]
    where: Expr | None
    body: tuple[Statement, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Stimulus:
    """`curve(orientation = 45deg, radius = 8)`."""

    name: Name
    args: tuple[tuple[Name, Expr], ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Activation:
    """`responds to S`, `prefers orientation 45deg ± 15deg on S`, `no echo on S`,
    `invariant to colour on S`, `covers orientation in 45deg bins [on S]`."""

    test: str  # "responds" | "prefers" | "no_echo" | "invariant" | "covers"
    stimulus: Stimulus | None  # None only for `covers` without `on S`
    param: Name | None
    value: Expr | None  # `covers`: the bin width
    tolerance: Expr | None
    span: Span
    read: str = "post"  # "post": after the unit's nonlinearity; "pre" (`expect f pre ...`)


@dataclass(frozen=True, slots=True)
class Edit:
    """`ablate f`, `remove negative (a -> b)`, `scale (a -> b) by 0.5`."""

    kind: str  # "ablate" | "remove" | "scale"
    target: Ref | None
    edge: tuple[Ref, Ref] | None
    part: str  # "all" | "positive" | "negative"
    factor: Literal | None
    span: Span


@dataclass(frozen=True, slots=True)
class ChangeSize:
    """How large a predicted change is: `by at least 20%`, `to below 0.5 of`, `within 5%`."""

    kind: str  # "by_at_least" | "to_above" | "to_below" | "within"
    value: Literal  # a percentage (`20%` -> raw "20", value 20) or a ratio of the value before
    span: Span


@dataclass(frozen=True, slots=True)
class ExpectStmt:
    subject: Ref
    activation: Activation
    options: tuple[ThresholdOption, ...]
    claim_id: Name | None
    span: Span


@dataclass(frozen=True, slots=True)
class PredictStmt:
    edits: tuple[Edit, ...]
    subject: Ref
    activation: Activation
    change: str  # "increases" | "decreases" | "unchanged"
    options: tuple[ThresholdOption, ...]
    claim_id: Name | None
    span: Span
    size: ChangeSize | None = None


Statement = (
    CircuitDecl
    | CiteDecl
    | ModelDecl
    | ImportDecl
    | ThresholdDecl
    | FeatureDecl
    | FamilyDecl
    | ClaimStmt
    | CompareStmt
    | WithinStmt
    | BandingStmt
    | ForStmt
    | ExpectStmt
    | PredictStmt
)


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # including the leading `#`
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Spec:
    """One parsed file."""

    path: str
    source: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...]
