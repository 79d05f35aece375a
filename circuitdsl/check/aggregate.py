"""Aggregate verdicts: one per quantified line, against the base rate of its claims.

A quantified line (a `for` line, or a claim about a family as a whole) expands to
n claims. Each claim whose kind has a null (docs/claims.md, "The null") reports its
`base_rate` p_i: the share of the target's inputs for which the claim would pass. If
the line said nothing beyond chance, the number of passing claims X would be a sum of
independent Bernoulli(p_i) draws (a Poisson-binomial variable; binomial when every p_i
is the same). The aggregate's p-value is the exact upper tail `P(X >= passed)`, and the
line passes iff `p <= alpha` (default 0.01, `alpha A` in the spec, `with alpha A` on a
`for` or a line).

Why an exact test against the base rate rather than a permutation of the family's
parameter labels: the base rate is measured for each claim on its own target, from
statistics the checker computes anyway (every input of the layer pair), so it costs
nothing and works for a line over one family, a line with a `where` that keeps a
handful of pairs, and a family used as a whole. A label permutation needs a family
whose labels can be exchanged and many re-evaluations of the line; it answers "do the
labels matter", which `circ check --control shuffled` asks of the whole spec instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from circuitdsl.language.ir import Claim
from circuitdsl.report.model import AggregateResult, ClaimResult

DEFAULT_ALPHA = 0.01


def upper_tail(rates: Sequence[float], passed: int) -> float:
    """`P(X >= passed)` for X a sum of independent Bernoulli(rates[i]) (exact)."""
    pmf = [1.0]
    for p in rates:
        p = min(max(float(p), 0.0), 1.0)
        nxt = [0.0] * (len(pmf) + 1)
        for k, v in enumerate(pmf):
            nxt[k] += v * (1.0 - p)
            nxt[k + 1] += v * p
        pmf = nxt
    return min(1.0, max(0.0, sum(pmf[passed:])))


def aggregates(
    claims: Sequence[Claim], results: dict[str, ClaimResult]
) -> tuple[AggregateResult, ...]:
    """One aggregate per quantified line, in the order the lines first appear.

    Lines whose claims report no base rate (kinds without a null: equivariance,
    within, banding, activation and prediction claims) get no aggregate.
    """
    groups: dict[tuple[str, str], list[Claim]] = {}
    for c in claims:
        if c.line is None:
            continue
        where = c.origin.location if c.origin is not None else ""
        groups.setdefault((where, c.line), []).append(c)
    out = []
    for (_, line), members in groups.items():
        rs = [results[c.id] for c in members]
        measured = [r for r in rs if r.status in ("pass", "fail")]
        if not measured or any("base_rate" not in r.measured for r in measured):
            continue
        alpha = members[0].alpha if members[0].alpha is not None else DEFAULT_ALPHA
        rates = [r.measured["base_rate"] for r in measured]
        passed = sum(r.status == "pass" for r in measured)
        p = upper_tail(rates, passed)
        errors = len(rs) - len(measured)
        out.append(
            AggregateResult(
                source=rs[0].source,
                text=line,
                status="pass" if p <= alpha else "fail",
                passed=passed,
                of=len(measured),
                base_rate=sum(rates) / len(rates),
                p_value=p,
                alpha=alpha,
                errors=errors,
            )
        )
    return tuple(out)
