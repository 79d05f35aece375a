"""The registry of claim kinds: which statistics each one measures and its default verdict.

Resolve uses it to validate `threshold` lines and per-claim `( ... )` options; compile
uses it to give every claim its effective thresholds; the checker computes the
statistics named here. docs/claims.md documents the formulas.

A threshold line names the claim by the word a spec uses for it (`threshold excites
z >= 1.5`), so a researcher never needs to know the internal kind names.
"""

from __future__ import annotations

from dataclasses import dataclass

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
ACTIVATION_RULE_WORDS = {
    "responds": "responds",
    "prefers": "prefers",
    "no_echo": "echo",
    "invariant": "invariant",
    "covers": "covers",
}


def rule_word(kind: str, args: dict[str, object]) -> str:
    """The registry word governing a claim of `kind` with `args`."""
    if kind in ("sign", "region", "union"):
        return str(args["sign"])
    if kind == "compare":
        m = str(args.get("measure", "norm"))
        return {"norm": "stronger", "excites": "more", "inhibits": "more"}.get(m, m)
    return {
        "shape": "along",
        "strongest": "strongest",
        "rank": "among",
        "compare": "stronger",
        "equivariance": "equivariant",
        "within": "within",
        "banding": "banded_more" if "than" in args else "banded",
        "prediction": "predict",
        "proportion": "most",
        "coverage": "covers",
    }.get(kind) or ACTIVATION_RULE_WORDS[str(args["test"])]


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
