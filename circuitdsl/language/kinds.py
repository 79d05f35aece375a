"""The typed payload of every claim kind: what a claim says beyond its edges and subjects.

Each kind has one frozen, slotted dataclass here (`SignClaim`, `RegionClaim`, ...),
registered with its grammar words, rules and handler in `circuitdsl.language.claims.KINDS`.
Code reads typed attributes (`claim.payload.sign`), never a dict. `to_dict()` gives the
IR JSON's `args` object exactly as it has always been written (optional keys only when
set), and `from_dict` reads it back, so JSON files and goldens do not change.

A payload also knows the registry word whose thresholds govern it (`rule_word`), the
sign its edge is drawn with (`drawn_sign`), the node it is about (`subject_name`) and
whether its verdict is inverted (`is_negated`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

#: a stimulus argument's value: a number, a label or a condition
ArgValue = float | str | bool

_P = TypeVar("_P", bound="Part")


def _omit_if(default: Any) -> Any:
    """A field left out of `to_dict()` while it has its default (the JSON had no key)."""
    return field(default=default, metadata={"omit_if": default})


def _plain(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_dict()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


class Part:
    """A structured value inside a payload (a region, a stimulus, an edit, ...)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The value as the IR JSON writes it: fields in order, unset optional ones left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if "omit_if" in f.metadata and value == f.metadata["omit_if"]:
                continue
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[_P], data: Mapping[str, Any]) -> _P:
        """Inverse of `to_dict`: missing optional keys take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


# ---- parts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Region(Part):
    """A named kernel region (`top`), or explicit inclusive rows (and columns)."""

    name: str | None = _omit_if(None)
    rows: tuple[int, int] | None = _omit_if(None)
    cols: tuple[int, int] | None = _omit_if(None)  # None with rows: every column

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Region:
        rows, cols = data.get("rows"), data.get("cols")
        return cls(
            name=data.get("name"),
            rows=(int(rows[0]), int(rows[1])) if rows is not None else None,
            cols=(int(cols[0]), int(cols[1])) if cols is not None else None,
        )

    @property
    def slug(self) -> str:
        """`top`, `rows0-1_cols2-3`: how the region reads in a claim id."""
        if self.name is not None:
            return self.name
        assert self.rows is not None
        slug = "rows{}-{}".format(*self.rows)
        if self.cols is not None:
            slug += "_cols{}-{}".format(*self.cols)
        return slug


@dataclass(frozen=True, slots=True)
class StimulusRef(Part):
    """`curve(radius = 8)`: a stimulus generator's name and the arguments it is given."""

    name: str
    args: tuple[tuple[str, ArgValue], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StimulusRef:
        return cls(str(data["name"]), tuple(dict(data.get("args") or {}).items()))

    @property
    def kwargs(self) -> dict[str, ArgValue]:
        """The arguments as keyword arguments for the stimulus generator."""
        return dict(self.args)


@dataclass(frozen=True, slots=True)
class Edit(Part):
    """`ablate f`, `remove negative (a -> b)`, `scale (a -> b) by 0.5` with nodes resolved."""

    kind: str  # "ablate" | "remove" | "scale"
    part: str = "all"  # "all" | "positive" | "negative"
    target: str | None = _omit_if(None)  # ablate
    edge: tuple[str, str] | None = _omit_if(None)  # remove, scale
    factor: float | None = _omit_if(None)  # scale

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Edit:
        edge = data.get("edge")
        return cls(
            kind=str(data["kind"]),
            part=str(data.get("part", "all")),
            target=data.get("target"),
            edge=(str(edge[0]), str(edge[1])) if edge is not None else None,
            factor=data.get("factor"),
        )

    @property
    def slug(self) -> str:
        if self.kind == "ablate":
            return f"ablate_{self.target}"
        assert self.edge is not None
        part = "" if self.part == "all" else f"{self.part}_"
        return f"{self.kind}_{part}{self.edge[0]}->{self.edge[1]}"


@dataclass(frozen=True, slots=True)
class ChangeSize(Part):
    """A predicted change's size: percentages are fractions (`20%` -> 0.2)."""

    kind: str  # "by_at_least" | "to_above" | "to_below" | "within"
    value: float


@dataclass(frozen=True, slots=True)
class ActivationTest(Part):
    """`responds to S`, `prefers P V ± T on S`, `no echo on S`, `invariant to P on S`."""

    test: str  # "responds" | "prefers" | "no_echo" | "invariant"
    stimulus: StimulusRef
    param: str | None = None
    value: float | None = None  # the preferred value, as the spec's expression gave it
    tolerance: float | None = None
    read: str | None = _omit_if(None)  # "pre": before the unit's nonlinearity

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivationTest:
        return cls(
            test=str(data["test"]),
            stimulus=StimulusRef.from_dict(data["stimulus"]),
            param=data.get("param"),
            value=data.get("value"),
            tolerance=data.get("tolerance"),
            read=data.get("read"),
        )

    @property
    def pre(self) -> bool:
        return self.read == "pre"


# ---- payloads -----------------------------------------------------------------------

_BY_KIND: dict[str, type[Payload]] = {}


def payload_from_dict(kind: str, args: Mapping[str, Any]) -> Payload:
    """The payload of a claim of `kind` from the IR JSON's `args` object."""
    cls = _BY_KIND.get(kind)
    if cls is None:
        raise ValueError(f"unknown claim kind `{kind}`; known: {', '.join(_BY_KIND)}")
    return cls.from_dict(args)


class Payload(Part):
    """What one claim kind states. Subclasses are frozen, slotted dataclasses; each
    names its kind (`kind`), which is how the IR JSON's `args` are read back."""

    __slots__ = ()
    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str):  # the slotted class `dataclass` makes replaces the first
            _BY_KIND[kind] = cls

    def rule_word(self) -> str:
        """The registry word (`RULES`) whose default thresholds govern this claim."""
        raise NotImplementedError

    @property
    def drawn_sign(self) -> str | None:
        """ "excites" / "inhibits" for an edge drawn as such, else None."""
        return None

    def subject_name(self) -> str | None:
        """The node an activation claim is about (None: the claim's edges say)."""
        return None

    def is_negated(self) -> bool:
        """`not F within L`, `not banded D`: the verdict is inverted."""
        return False


class _Signed(Payload):
    """A payload with a `sign` word (`excites`, `inhibits`, `weak`): its edge is drawn
    with that sign, and by default the word also names its rules."""

    __slots__ = ()
    sign: str  # each subclass declares it as its dataclass field

    def rule_word(self) -> str:
        return self.sign

    @property
    def drawn_sign(self) -> str | None:
        return self.sign if self.sign in ("excites", "inhibits") else None


@dataclass(frozen=True, slots=True)
class SignClaim(_Signed):
    """`a -> b : excites` (or `inhibits`, `weak`): the sign of the summed weight."""

    kind: ClassVar[str] = "sign"
    sign: str


@dataclass(frozen=True, slots=True)
class UnionClaim(_Signed):
    """`{a, b} -> t : excites`: each member's edge has the sign."""

    kind: ClassVar[str] = "union"
    sign: str


@dataclass(frozen=True, slots=True)
class RegionClaim(_Signed):
    """`a -> b : excites at top`: the sign of the weights in one kernel region."""

    kind: ClassVar[str] = "region"
    sign: str
    region: Region

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegionClaim:
        return cls(str(data["sign"]), Region.from_dict(data["region"]))


@dataclass(frozen=True, slots=True)
class StrongestClaim(_Signed):
    """`a -> b : strongest at bottom`: the region's mean weight beats every other's."""

    kind: ClassVar[str] = "strongest"
    sign: str  # "excites", or "inhibits" for `strongest inhibition`
    region: Region

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrongestClaim:
        return cls(str(data.get("sign", "excites")), Region.from_dict(data["region"]))

    def rule_word(self) -> str:
        return "strongest"


@dataclass(frozen=True, slots=True)
class RankClaim(Payload):
    """`a -> b : among top k [excitatory | inhibitory] inputs`."""

    kind: ClassVar[str] = "rank"
    k: int
    polarity: str = "any"  # "any" | "excitatory" | "inhibitory"

    def rule_word(self) -> str:
        return "among"

    @property
    def drawn_sign(self) -> str | None:
        return {"excitatory": "excites", "inhibitory": "inhibits"}.get(self.polarity)


#: a comparison's measure -> its registry word
COMPARE_WORDS = {"norm": "stronger", "excites": "more", "inhibits": "more"}


@dataclass(frozen=True, slots=True)
class CompareClaim(Payload):
    """`a -> c stronger than b -> c` (and `excites more than`, `similar to`, ...)."""

    kind: ClassVar[str] = "compare"
    measure: str = "norm"  # "norm" | "excites" | "inhibits" | "similar" | "opposite"

    @staticmethod
    def word_of(measure: str) -> str:
        """The registry word of a comparison with this measure."""
        return COMPARE_WORDS.get(measure, measure)

    def rule_word(self) -> str:
        return self.word_of(self.measure)


@dataclass(frozen=True, slots=True)
class ShapeClaim(_Signed):
    """`a -> b : excites along arc 45deg (radius = 3)`."""

    kind: ClassVar[str] = "shape"
    sign: str
    shape: str  # "line" | "arc"
    orientation: float  # degrees
    radius: float | None = _omit_if(None)  # an arc's radius, from `(radius = R)`

    def rule_word(self) -> str:
        return "along"


@dataclass(frozen=True, slots=True)
class EquivarianceClaim(Payload):
    """`a -> b : equivariant under rotation(orientation) [mod P]` between two families."""

    kind: ClassVar[str] = "equivariance"
    transform: str = "rotation"  # "rotation" | "reflection" | "scale"
    param: str = ""
    period: float | None = None  # degrees; None: 360

    def rule_word(self) -> str:
        return "equivariant"


@dataclass(frozen=True, slots=True)
class WithinClaim(Payload):
    """`[not] F within L`: the feature's channels lie in branch L of their layer."""

    kind: ClassVar[str] = "within"
    branch: str
    negated: bool = _omit_if(False)

    def is_negated(self) -> bool:
        return self.negated

    def rule_word(self) -> str:
        return "within"


@dataclass(frozen=True, slots=True)
class BandingClaim(Payload):
    """`weights into L : [not] banded D [more than E]`."""

    kind: ClassVar[str] = "banding"
    layer: str
    direction: str = "horizontal"  # "horizontal" | "vertical"
    than: str | None = _omit_if(None)
    negated: bool = _omit_if(False)

    def is_negated(self) -> bool:
        return self.negated

    def rule_word(self) -> str:
        return "banded_more" if self.than else "banded"


@dataclass(frozen=True, slots=True)
class ProportionClaim(Payload):
    """`most of the top k inputs of T from L excite` (or `inhibit`)."""

    kind: ClassVar[str] = "proportion"
    layer: str
    k: int
    sign: str

    def rule_word(self) -> str:
        return "most"


#: an activation test -> its registry word
ACTIVATION_RULE_WORDS = {
    "responds": "responds",
    "prefers": "prefers",
    "no_echo": "echo",
    "invariant": "invariant",
    "covers": "covers",
}


@dataclass(frozen=True, slots=True)
class ActivationClaim(Payload):
    """`expect F [pre] responds to S` (prefers, no echo, invariant): one unit's response."""

    kind: ClassVar[str] = "activation"
    subject: str
    test: str
    stimulus: StimulusRef
    param: str | None = None
    value: float | None = None
    tolerance: float | None = None
    read: str | None = _omit_if(None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivationClaim:
        return cls.of(str(data["subject"]), ActivationTest.from_dict(data))

    @classmethod
    def of(cls, subject: str, t: ActivationTest) -> ActivationClaim:
        """The claim that `subject` passes test `t`."""
        return cls(subject, t.test, t.stimulus, t.param, t.value, t.tolerance, t.read)

    @property
    def activation(self) -> ActivationTest:
        """The test without its subject (what a prediction measures before and after)."""
        return ActivationTest(
            self.test, self.stimulus, self.param, self.value, self.tolerance, self.read
        )

    def subject_name(self) -> str | None:
        return self.subject

    def rule_word(self) -> str:
        return ACTIVATION_RULE_WORDS[self.test]


@dataclass(frozen=True, slots=True)
class PredictionClaim(Payload):
    """`predict EDITS: F <activation test> increases [by at least 20%]`."""

    kind: ClassVar[str] = "prediction"
    subject: str
    edits: tuple[Edit, ...]
    activation: ActivationTest
    change: str  # "increases" | "decreases" | "unchanged"
    size: ChangeSize | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionClaim:
        size = data.get("size")
        return cls(
            subject=str(data["subject"]),
            edits=tuple(Edit.from_dict(e) for e in data["edits"]),
            activation=ActivationTest.from_dict(data["activation"]),
            change=str(data["change"]),
            size=ChangeSize.from_dict(size) if size is not None else None,
        )

    def subject_name(self) -> str | None:
        return self.subject

    def rule_word(self) -> str:
        return "predict"


@dataclass(frozen=True, slots=True)
class CoverageClaim(Payload):
    """`expect F covers P in W bins [on S]`: a claim about a family as a whole."""

    kind: ClassVar[str] = "coverage"
    subject: str
    test: str = "covers"
    param: str = "orientation"
    bin: float = 45.0  # the bin width
    stimulus: StimulusRef | None = None  # None: the selector's stimulus
    read: str | None = None  # "post" | "pre"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CoverageClaim:
        stim = data.get("stimulus")
        return cls(
            subject=str(data["subject"]),
            test=str(data.get("test", "covers")),
            param=str(data["param"]),
            bin=float(data["bin"]),
            stimulus=StimulusRef.from_dict(stim) if stim is not None else None,
            read=data.get("read"),
        )

    @property
    def pre(self) -> bool:
        return self.read == "pre"

    def subject_name(self) -> str | None:
        return self.subject

    def rule_word(self) -> str:
        return "covers"
