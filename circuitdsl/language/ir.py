"""The compiled, model-independent circuit: features, families and claims.

This is the contract between the front end (parse -> resolve -> compile) and the
back end (bind -> check -> render). Everything here is plain data: frozen
dataclasses that serialise to JSON (`circuitdsl.language.graph` builds the networkx view
and the JSON / GraphML / DOT forms).

Each claim kind has a typed payload (`Claim.payload`, one frozen dataclass per kind in
`circuitdsl.language.kinds`, registered in `circuitdsl.language.claims.KINDS`): a sign
claim's `SignClaim(sign)`, a region claim's `RegionClaim(sign, region)`, and so on. The
JSON form writes it as the claim's `args` object (`payload.to_dict()`).

Every claim carries its effective thresholds (registry defaults, overridden by the
spec's `threshold` lines, overridden by the claim's own `( ... )` options).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from circuitdsl.language.diagnostics import Span
from circuitdsl.language.kinds import Payload, payload_from_dict

PARAM_TYPES = ("angle", "number", "label")


@dataclass(frozen=True, slots=True)
class Param:
    """A family parameter value of one member: angles in degrees, labels as text."""

    name: str
    type: str
    value: float | str


@dataclass(frozen=True, slots=True)
class Feature:
    """A direction in one layer's activation space: a single channel or a weighted sum.

    `channels` and `coefficients` have the same length; a plain channel feature has
    one channel with coefficient 1.0.
    """

    name: str
    layer: str
    channels: tuple[int, ...]
    coefficients: tuple[float, ...]
    label: str | None = None
    family: str | None = None
    params: tuple[Param, ...] = ()
    span: Span | None = None

    @property
    def is_channel(self) -> bool:
        return len(self.channels) == 1 and self.coefficients == (1.0,)

    @property
    def kind(self) -> str:
        return "channel" if self.is_channel else "direction"

    @property
    def ref(self) -> str:
        """Lucid-style notation: `mixed4c:447`, or `0.8*mixed4c:447 - 0.2*mixed4c:12`."""
        if self.is_channel:
            return f"{self.layer}:{self.channels[0]}"
        parts = []
        for i, (ch, c) in enumerate(zip(self.channels, self.coefficients, strict=True)):
            sign = "-" if c < 0 else "+"
            mag = f"{abs(c):g}*"
            parts.append((sign if i else ("-" if c < 0 else "")) + f"{mag}{self.layer}:{ch}")
        return " ".join(parts)

    def param(self, name: str) -> float | str:
        for p in self.params:
            if p.name == name:
                return p.value
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Family:
    """A named set of features of one layer, each member with typed parameter values."""

    name: str
    layer: str
    param_types: tuple[tuple[str, str], ...]
    members: tuple[str, ...]
    label: str | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Threshold:
    """`stat op value`, e.g. `z >= 1.0`: the claim holds when the measured stat satisfies it."""

    stat: str
    op: str
    value: float

    def holds(self, measured: float) -> bool:
        return {
            ">=": measured >= self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            "<": measured < self.value,
            "==": measured == self.value,
            "!=": measured != self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable statement. `edges` are (source, target) node names; `payload` is
    what the claim says, typed by its kind (`circuitdsl.language.kinds`)."""

    id: str
    kind: str
    text: str
    edges: tuple[tuple[str, str], ...] = ()
    subjects: tuple[str, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    span: Span | None = None
    origin: Span | None = None  # the `for` statement a quantified claim came from
    # A quantified line (a `for` line, or a claim about a family as a whole) gets an
    # aggregate verdict: `line` is its text, shared by every claim the line expands to,
    # and `alpha` its significance level (None: the default, 0.01).
    line: str | None = None
    alpha: float | None = None
    payload: Payload = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.payload.kind != self.kind:  # a hand-built claim with the wrong payload
            raise TypeError(
                f"claim `{self.id}` of kind `{self.kind}` has a"
                f" {type(self.payload).__name__} payload (kind `{self.payload.kind}`)"
            )

    @property
    def source(self) -> str | None:
        return self.edges[0][0] if self.edges else None

    @property
    def target(self) -> str | None:
        return self.edges[0][1] if self.edges else None


#: The named input transforms a spec's `model NAME preprocess P` line may give
#: (`circuitdsl.models.preprocess` defines them).
PREPROCESS_NAMES = ("imagenet", "caffe", "lucent", "none")


@dataclass(frozen=True, slots=True)
class Circuit:
    """A compiled spec: everything the back end needs, nothing about any model."""

    name: str
    description: str | None
    citations: tuple[str, ...]
    model: str | None
    features: tuple[Feature, ...]
    families: tuple[Family, ...]
    claims: tuple[Claim, ...]
    path: str = "<string>"
    sources: tuple[str, ...] = ()  # every file read, the spec first then its imports
    preprocess: str | None = None  # `model M preprocess P`: overrides the model's own

    def feature(self, name: str) -> Feature:
        return self._features_by_name()[name]

    def family(self, name: str) -> Family:
        for fam in self.families:
            if fam.name == name:
                return fam
        raise KeyError(name)

    def members(self, family: str) -> tuple[Feature, ...]:
        by_name = self._features_by_name()
        return tuple(by_name[m] for m in self.family(family).members)

    def node_names(self) -> set[str]:
        return {f.name for f in self.features} | {f.name for f in self.families}

    def _features_by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    # ---- JSON: lossless, stable key order --------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = self._to_dict()
        if self.preprocess is not None:  # only when given, so older JSON stays as it was
            items = list(out.items())  # after "model", as the fields are declared
            out = dict(items[:4]) | {"preprocess": self.preprocess} | dict(items[4:])
        return out

    def _to_dict(self) -> dict[str, Any]:
        return {
            "circuit": self.name,
            "description": self.description,
            "citations": list(self.citations),
            "model": self.model,
            "path": self.path,
            "sources": list(self.sources),
            "features": [_feature_to_dict(f) for f in self.features],
            "families": [_family_to_dict(f) for f in self.families],
            "claims": [_claim_to_dict(c) for c in self.claims],
        }

    def to_json(self) -> str:
        # Strict JSON: the parser refuses numbers too large for a float, so none is inf.
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Circuit:
        return cls(
            name=data["circuit"],
            description=data["description"],
            citations=tuple(data["citations"]),
            model=data["model"],
            preprocess=data.get("preprocess"),
            path=data["path"],
            sources=tuple(data["sources"]),
            features=tuple(_feature_from_dict(f) for f in data["features"]),
            families=tuple(_family_from_dict(f) for f in data["families"]),
            claims=tuple(_claim_from_dict(c) for c in data["claims"]),
        )

    @classmethod
    def from_json(cls, text: str) -> Circuit:
        return cls.from_dict(json.loads(text))


def _span(span: Span | None) -> list[object] | None:
    return span.to_json() if span else None


def _unspan(data: Any) -> Span | None:
    return Span.from_json(data) if data else None


def _feature_to_dict(f: Feature) -> dict[str, Any]:
    return {
        "name": f.name,
        "layer": f.layer,
        "channels": list(f.channels),
        "coefficients": list(f.coefficients),
        "label": f.label,
        "family": f.family,
        "params": [{"name": p.name, "type": p.type, "value": p.value} for p in f.params],
        "span": _span(f.span),
    }


def _feature_from_dict(d: Mapping[str, Any]) -> Feature:
    return Feature(
        name=d["name"],
        layer=d["layer"],
        channels=tuple(d["channels"]),
        coefficients=tuple(float(c) for c in d["coefficients"]),
        label=d["label"],
        family=d["family"],
        params=tuple(Param(p["name"], p["type"], p["value"]) for p in d["params"]),
        span=_unspan(d["span"]),
    )


def _family_to_dict(f: Family) -> dict[str, Any]:
    return {
        "name": f.name,
        "layer": f.layer,
        "params": [[n, t] for n, t in f.param_types],
        "members": list(f.members),
        "label": f.label,
        "span": _span(f.span),
    }


def _family_from_dict(d: Mapping[str, Any]) -> Family:
    return Family(
        name=d["name"],
        layer=d["layer"],
        param_types=tuple((n, t) for n, t in d["params"]),
        members=tuple(d["members"]),
        label=d["label"],
        span=_unspan(d["span"]),
    )


def _claim_to_dict(c: Claim) -> dict[str, Any]:
    return (
        {
            "id": c.id,
            "kind": c.kind,
            "text": c.text,
            "edges": [list(e) for e in c.edges],
            "subjects": list(c.subjects),
            "args": _jsonable(c.payload.to_dict()),
            "thresholds": [[t.stat, t.op, t.value] for t in c.thresholds],
            "span": _span(c.span),
            "origin": _span(c.origin),
        }
        | ({"line": c.line} if c.line is not None else {})
        | ({"alpha": c.alpha} if c.alpha is not None else {})
    )


def _claim_from_dict(d: Mapping[str, Any]) -> Claim:
    return Claim(
        id=d["id"],
        kind=d["kind"],
        text=d["text"],
        edges=tuple((s, t) for s, t in d["edges"]),
        subjects=tuple(d["subjects"]),
        payload=payload_from_dict(d["kind"], _frozen(d["args"])),
        thresholds=tuple(Threshold(s, o, float(v)) for s, o, v in d["thresholds"]),
        span=_unspan(d["span"]),
        origin=_unspan(d["origin"]),
        line=d.get("line"),
        alpha=d.get("alpha"),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    """JSON lists back to the tuples the compiler produces, so round trips compare equal."""
    if isinstance(value, Mapping):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
