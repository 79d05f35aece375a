"""One orientation convention: `along arc θ` means a curve of orientation θ (convex side).

Arcs are planted with the stimulus generator (`curve(orientation = θ)`, the convention
of docs/stimuli.md and `circ tune`), not with the checker's template: the claim must
pass at θ and fail at θ ± 90° (the old tangent convention) and at θ + 180°.
"""

from __future__ import annotations

import torch

import circuitdsl
from circuitdsl.check import TensorBound, check
from circuitdsl.measure.stimuli.generators import curve

ANGLES = (0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)


def _bound() -> TensorBound:
    g = torch.Generator().manual_seed(3)
    block = 0.05 * torch.randn(len(ANGLES), 8, 5, 5, generator=g)
    for t, theta in enumerate(ANGLES):
        arc = curve(theta, radius=2.0, span=180.0, width=1.0, size=5)[0, 0]
        block[t, t] += arc - 0.1  # source t -> target t: an excitatory arc of orientation theta
    return TensorBound({("a", "b"): block})


def _spec(offset: float) -> str:
    members_a = ", ".join(f"{i}: {a:g}deg" for i, a in enumerate(ANGLES))
    return (
        "circuit arcs\n"
        f"family src(orientation: angle) in a {{ {members_a} }}\n"
        f"family dst(orientation: angle) in b {{ {members_a} }}\n"
        "for s in src, d in dst where s.orientation == d.orientation {\n"
        f"  s -> d : excites along arc (d.orientation + {offset:g}deg)\n"
        "}\n"
    )


def test_arc_claims_pass_only_at_the_curve_orientation() -> None:
    bound = _bound()
    verdicts = {}
    for offset in (0.0, 90.0, -90.0, 180.0):
        rep = check(circuitdsl.loads(_spec(offset), "arcs.circ").circuit, bound)
        verdicts[offset] = [c.status for c in rep.claims]
        if offset == 0.0:
            assert all(c.measured["correlation"] > 0.9 for c in rep.claims)
            assert rep.aggregates[0].status == "pass"
        else:
            assert rep.aggregates[0].status == "fail"
    assert verdicts[0.0] == ["pass"] * len(ANGLES)
    for offset in (90.0, -90.0, 180.0):
        assert verdicts[offset] == ["fail"] * len(ANGLES), (offset, verdicts[offset])


def test_arc_90_bulges_up_like_the_stimulus() -> None:
    from circuitdsl.check.shape import template

    t = template("arc", 90.0, 5, 5)
    assert float(t[2, 2]) == 1.0  # through the centre
    assert float(t[:2].sum()) == 0.0  # nothing above the apex: the convex side is up
    assert float(t[4, 0]) == 1.0 and float(t[4, 4]) == 1.0  # the arms go down
