"""The registry of claim kinds: which statistics each one measures and its default verdict.

`RULES` (keyed by the word a spec's `threshold` lines use) holds each rule's statistics
and default thresholds; `KINDS` holds one `ClaimKind` per claim kind: its grammar words,
its typed payload class (`circuitdsl.language.kinds`), the rules its claims use and the
module that measures it. Resolve uses the rules to validate `threshold` lines and
per-claim `( ... )` options; compile gives every claim its effective thresholds; the
checker dispatches each kind to its handler. docs/claims.md documents the formulas.

A threshold line names the claim by the word a spec uses for it (`threshold excites
z >= 1.5`), so a researcher never needs to know the internal kind names.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitdsl.language import kinds as k
from circuitdsl.language.ir import Threshold


@dataclass(frozen=True, slots=True)
class Rule:
    """The statistics a group of claims reports and the default thresholds on them."""

    word: str  # how specs refer to this rule in `threshold WORD stat op value`
    stats: tuple[str, ...]  # every statistic the checker reports for such a claim
    defaults: tuple[Threshold, ...]
    summary: str


def _t(stat: str, op: str, value: float) -> Threshold:
    return Threshold(stat, op, value)


RULES: dict[str, Rule] = {
    r.word: r
    for r in (
        Rule(
            "excites",
            ("z", "total", "percentile"),
            (_t("z", ">=", 2.0),),
            "the weight sum is at least 2 RMS of all inputs into the target above zero",
        ),
        Rule(
            "inhibits",
            ("z", "total", "percentile"),
            (_t("z", "<=", -2.0),),
            "the weight sum is at least 2 RMS of all inputs into the target below zero",
        ),
        Rule(
            "weak",
            ("abs_z", "total", "percentile"),
            (_t("abs_z", "<=", 0.5),),
            "the weight sum is within half an RMS of zero",
        ),
        Rule(
            "strongest",
            ("margin", "share", "percentile"),
            (_t("margin", ">", 0.4), _t("percentile", ">=", 95.0)),
            "the region's mean weight exceeds every other region's by 0.4 of the kernel's"
            " RMS, a margin in the top 5 % of the target's inputs",
        ),
        Rule(
            "among",
            ("rank", "strength", "percentile"),
            (),
            "the source ranks among the top k inputs (k from the claim)",
        ),
        Rule(
            "stronger",
            ("ratio", "percentile"),
            (_t("ratio", ">=", 1.6),),
            "the first connection's kernel norm is at least 1.6 times the second's",
        ),
        Rule(
            "more",
            ("difference", "percentile"),
            (_t("difference", ">=", 2.5),),
            "the first connection's signed z exceeds the second's by a margin (inhibits: is"
            " more negative)",
        ),
        Rule(
            "similar",
            ("cosine", "percentile"),
            (_t("cosine", ">=", 0.5),),
            "the cosine between the two connections' kernels is high",
        ),
        Rule(
            "opposite",
            ("cosine", "percentile"),
            (_t("cosine", "<=", -0.5),),
            "the cosine between the two connections' kernels is strongly negative",
        ),
        Rule(
            "along",
            ("correlation", "z", "percentile"),
            (_t("correlation", ">=", 0.5),),
            "the kernel's positive part correlates with the oriented line/arc template",
        ),
        Rule(
            "equivariant",
            ("correlation", "pairs"),
            (_t("correlation", ">=", 0.5),),
            "kernels match after transforming by the parameter difference",
        ),
        Rule(
            "within",
            ("fraction",),
            (_t("fraction", ">=", 1.0),),
            "this fraction of the channels lies in the branch",
        ),
        Rule(
            "banded",
            ("banding",),
            (_t("banding", ">=", 0.5),),
            "the share of kernel variance explained by row (column) means",
        ),
        Rule(
            "most",
            ("fraction", "p_value", "count"),
            (_t("fraction", ">", 0.5), _t("p_value", "<=", 0.05)),
            "more than half of the target's top k inputs (by kernel norm) have the sign, more"
            " than the share of that sign among all its inputs explains",
        ),
        Rule(
            "banded_more",
            ("ratio", "banding", "other"),
            (_t("ratio", ">=", 1.5),),
            "banding in one direction is at least 1.5 times banding in the other",
        ),
        Rule(
            "responds",
            ("z", "activation"),
            (_t("z", ">=", 2.0),),
            "activation to the stimulus in SDs of the reference distribution (and above 0)",
        ),
        Rule(
            "prefers",
            ("preferred", "error"),
            (),
            "the preferred parameter lies within the stated tolerance",
        ),
        Rule(
            "echo",
            ("echo_ratio",),
            (_t("echo_ratio", "<=", 0.1),),
            "response at the opposite orientation relative to the peak",
        ),
        Rule(
            "invariant",
            ("cv",),
            (_t("cv", "<=", 0.25),),
            "coefficient of variation of the response across variants",
        ),
        Rule(
            "covers",
            ("fraction", "covered", "bins"),
            (_t("fraction", ">=", 1.0),),
            "the share of the parameter's bins that some member prefers",
        ),
        Rule(
            "predict",
            (
                "change",
                "before",
                "after",
                "effect",
                "abs_effect",
                "relative_change",
                "abs_relative_change",
                "ratio",
            ),
            (),
            "the measured change has the predicted direction (and size, when stated)",
        ),
    )
}

NAMED_REGIONS = (
    "top",
    "bottom",
    "left",
    "right",
    "center",
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
)
TRANSFORMS = ("rotation", "reflection", "scale")


@dataclass(frozen=True, slots=True)
class ClaimKind:
    """Everything about one claim kind, declared once.

    Adding a kind means: its payload class and handler module, one `ClaimKind` here (or
    `register_kind`), and its grammar (syntax, resolve, compile). Nothing else reads
    kind names: the checker imports `handler` and calls its `measure(claims, ctx)` and
    `edges(claim, circuit)`; rendering asks the payload (`drawn_sign`, `subject_name`).
    """

    name: str  # `Claim.kind`, in the IR and the report
    payload: type[k.Payload]
    grammar: tuple[str, ...]  # the spec keywords that introduce such a claim
    words: tuple[str, ...]  # its `RULES` words (what `threshold WORD ...` lines name)
    handler: str  # the module (dotted path) that measures it
    summary: str

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The statistics and default thresholds of each of its rule words."""
        return tuple(RULES[w] for w in self.words)


_CHECK = "circuitdsl.check."
KINDS: dict[str, ClaimKind] = {
    c.name: c
    for c in (
        ClaimKind(
            "sign",
            k.SignClaim,
            ("excites", "inhibits", "weak"),
            ("excites", "inhibits", "weak"),
            _CHECK + "sign",
            "`a -> b : excites`: the sign of the summed weight",
        ),
        ClaimKind(
            "region",
            k.RegionClaim,
            ("excites", "inhibits", "weak", "at", "rows", "cols"),
            ("excites", "inhibits", "weak"),
            _CHECK + "region",
            "`a -> b : excites at top`: the sign of the weights in a kernel region",
        ),
        ClaimKind(
            "strongest",
            k.StrongestClaim,
            ("strongest", "excitation", "inhibition", "at"),
            ("strongest",),
            _CHECK + "region",
            "`a -> b : strongest at bottom`: the region's mean weight beats every other's",
        ),
        ClaimKind(
            "rank",
            k.RankClaim,
            ("among", "top", "excitatory", "inhibitory", "inputs"),
            ("among",),
            _CHECK + "rank",
            "`a -> b : among top 5 inputs`: the source's rank among the target's inputs",
        ),
        ClaimKind(
            "compare",
            k.CompareClaim,
            ("stronger", "more", "than", "similar", "opposite", "to"),
            ("stronger", "more", "similar", "opposite"),
            _CHECK + "compare",
            "`a -> c stronger than b -> c`: two connections compared",
        ),
        ClaimKind(
            "shape",
            k.ShapeClaim,
            ("along", "line", "arc"),
            ("along",),
            _CHECK + "shape",
            "`a -> b : excites along arc 45deg`: the kernel matches an oriented template",
        ),
        ClaimKind(
            "union",
            k.UnionClaim,
            ("excites", "inhibits", "weak"),
            ("excites", "inhibits", "weak"),
            _CHECK + "union",
            "`{a, b} -> t : excites`: every member's edge has the sign",
        ),
        ClaimKind(
            "equivariance",
            k.EquivarianceClaim,
            ("equivariant", "under", "mod"),
            ("equivariant",),
            _CHECK + "equivariance",
            "`a -> b : equivariant under rotation(orientation)`: kernels transform together",
        ),
        ClaimKind(
            "within",
            k.WithinClaim,
            ("within", "not"),
            ("within",),
            _CHECK + "within",
            "`f within mixed3b_5x5`: the feature's channels lie in that branch",
        ),
        ClaimKind(
            "banding",
            k.BandingClaim,
            ("weights", "into", "banded", "not", "more", "than"),
            ("banded", "banded_more"),
            _CHECK + "banding",
            "`weights into L : banded horizontal`: kernel variance explained by row means",
        ),
        ClaimKind(
            "proportion",
            k.ProportionClaim,
            ("most", "of", "the", "top", "inputs", "from", "excite", "inhibit"),
            ("most",),
            _CHECK + "proportion",
            "`most of the top 16 inputs of t from L inhibit`: a proportion over all inputs",
        ),
        ClaimKind(
            "activation",
            k.ActivationClaim,
            ("expect", "pre", "responds", "to", "prefers", "on", "no", "echo", "invariant"),
            ("responds", "prefers", "echo", "invariant"),
            _CHECK + "activation",
            "`expect f responds to S`: one unit's response to stimuli",
        ),
        ClaimKind(
            "prediction",
            k.PredictionClaim,
            (
                "predict",
                "ablate",
                "remove",
                "scale",
                "positive",
                "negative",
                "by",
                "increases",
                "decreases",
                "unchanged",
                "at",
                "least",
                "above",
                "below",
                "within",
                "of",
            ),
            ("predict",),
            _CHECK + "activation",
            "`predict ablate a: f responds to S decreases`: an edit's effect on a response",
        ),
        ClaimKind(
            "coverage",
            k.CoverageClaim,
            ("expect", "covers", "in", "bins", "on"),
            ("covers",),
            _CHECK + "activation",
            "`expect fam covers orientation in 45deg bins`: members' preferences fill bins",
        ),
    )
}


def register_kind(kind: ClaimKind, rules: tuple[Rule, ...] = ()) -> None:
    """Add a claim kind (and any rules of its own) to the registry.

    Its claims then serialise, check and render like the built-in kinds; a spec can
    state them once the grammar, resolve and compile know its syntax.
    """
    for rule in rules:
        RULES[rule.word] = rule
    missing = [w for w in kind.words if w not in RULES]
    if missing:
        raise ValueError(f"claim kind `{kind.name}` names unknown rules: {', '.join(missing)}")
    if kind.payload.kind != kind.name:
        raise ValueError(f"payload {kind.payload.__name__} is of kind `{kind.payload.kind}`")
    KINDS[kind.name] = kind


def unregister_kind(name: str) -> None:
    """Forget a kind added with `register_kind` (and rules no other kind uses)."""
    gone = KINDS.pop(name, None)
    if gone is None:
        return
    used = {w for c in KINDS.values() for w in c.words}
    for w in gone.words:
        if w not in used:
            RULES.pop(w, None)


def effective_thresholds(
    word: str,
    spec_level: dict[str, tuple[Threshold, ...]],
    own: tuple[Threshold, ...],
    extra: tuple[Threshold, ...] = (),
) -> tuple[Threshold, ...]:
    """Registry defaults, overridden stat by stat by the spec, then by the claim."""
    by_stat: dict[str, Threshold] = {t.stat: t for t in RULES[word].defaults}
    by_stat.update({t.stat: t for t in extra})
    by_stat.update({t.stat: t for t in spec_level.get(word, ())})
    by_stat.update({t.stat: t for t in own})
    return tuple(by_stat.values())
