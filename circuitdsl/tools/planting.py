"""Build circuits and plant known structure in weights: for tests, benchmarks and demos.

A planted circuit is the checker's ground truth: put a pattern into random weights
(a unit excited at the top of its kernel, a family whose kernels are rotations of
one kernel, a dominant input), state true and false claims about it, and the
checker must pass the true ones and fail the false ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from circuitdsl.check.equivariance import _rot, resample
from circuitdsl.language.ir import Circuit, Claim, Family, Feature, Param, Threshold


def feature(
    name: str,
    layer: str,
    channel: int | Sequence[int],
    coefficients: Sequence[float] | None = None,
    *,
    family: str | None = None,
    params: Mapping[str, float | str] | None = None,
) -> Feature:
    """A channel feature (`channel` an int) or a direction (a list of channels)."""
    chans = (channel,) if isinstance(channel, int) else tuple(channel)
    coeffs = tuple(float(c) for c in coefficients) if coefficients else (1.0,) * len(chans)
    ps = tuple(
        Param(k, "label" if isinstance(v, str) else "angle", v) for k, v in (params or {}).items()
    )
    return Feature(name, layer, chans, coeffs, family=family, params=ps)


def family(
    name: str, layer: str, members: Mapping[int, float | str], param: str = "orientation"
) -> tuple[Family, list[Feature]]:
    """A family of channel features with one parameter, named `name[channel]`."""
    feats = [
        feature(f"{name}[{ch}]", layer, ch, family=name, params={param: v})
        for ch, v in members.items()
    ]
    ptype = "label" if any(isinstance(v, str) for v in members.values()) else "angle"
    fam = Family(name, layer, ((param, ptype),), tuple(f.name for f in feats))
    return fam, feats


def claim(
    cid: str,
    kind: str,
    edges: Iterable[tuple[str, str]] = (),
    *,
    thresholds: Iterable[tuple[str, str, float]] | None = None,
    subjects: Iterable[str] = (),
    text: str | None = None,
    **args: Any,
) -> Claim:
    """A claim with registry-default thresholds for its kind (pass `thresholds` to override).

    `args` are the payload's fields as the IR JSON writes them (`sign="excites"`,
    `region={"name": "top"}`).
    """
    from circuitdsl.language.claims import RULES
    from circuitdsl.language.kinds import payload_from_dict

    payload = payload_from_dict(kind, args)
    if thresholds is None:
        rule = RULES.get(payload.rule_word())
        ts = rule.defaults if rule is not None else ()
    else:
        ts = tuple(Threshold(s, o, float(v)) for s, o, v in thresholds)
    edges = tuple(edges)
    return Claim(
        id=cid,
        kind=kind,
        text=text or f"{cid} ({kind})",
        edges=edges,
        subjects=tuple(subjects),
        payload=payload,
        thresholds=ts,
    )


def circuit(
    features: Iterable[Feature],
    claims: Iterable[Claim],
    families: Iterable[Family] = (),
    *,
    name: str = "planted",
    model: str | None = None,
) -> Circuit:
    """A Circuit from parts (no spec file)."""
    return Circuit(
        name=name,
        description=None,
        citations=(),
        model=model,
        features=tuple(features),
        families=tuple(families),
        claims=tuple(claims),
        path=f"<{name}>",
    )


def top_bottom_kernel(k: int, top: float = 1.0, bottom: float = -1.0) -> torch.Tensor:
    """A k x k kernel: `top` on rows above the middle, `bottom` below, 0 on the middle row."""
    w = torch.zeros(k, k)
    m = (k - 1) // 2
    w[:m] = top
    w[m + 1 :] = bottom
    return w


def rotate(kernel: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a 2-D kernel counter-clockwise (x right, y up) by bilinear resampling."""
    return resample(kernel[None], _rot(torch.tensor([float(degrees)])))[0]


def arc_kernel(k: int, theta: float, radius: float | None = None) -> torch.Tensor:
    """A kernel with positive weights along an arc (see shape.py) and -0.2 elsewhere."""
    from circuitdsl.check.shape import template

    t = template("arc", float(theta), k, k, radius)
    return torch.where(t > 0, t, torch.full_like(t, -0.2))
