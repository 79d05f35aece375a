"""Reports built by hand, so the output forms are tested without a model."""

from __future__ import annotations

from circuitdsl.language.ir import Threshold
from circuitdsl.report.model import ClaimResult, Expected, Report

PROVENANCE = {
    "package": "circuitdsl 0.1.0",
    "python": "3.12.0",
    "torch": "2.4.0",
    "platform": "Linux",
    "weights_sha256": "ab" * 32,
    "device": "cpu",
    "date": "2026-12-01T23:00:00+00:00",
    "seconds": 1.25,
}


def claim(cid: str, status: str, z: float, line: int, **extra: object) -> ClaimResult:
    return ClaimResult(
        id=cid,
        status=status,
        text=f"{cid.split('.')[0]} : excites",
        source=f"specs/demo.circ:{line}",
        measured={"z": z, "total": 2 * z},
        expected={"z": Expected(Threshold("z", ">=", 1.0))},
        detail=f"weight sum is {z} RMS" if status != "error" else "no such layer `conv9`",
        kind="sign",
        edges=(("a", "b"),),
        **extra,  # type: ignore[arg-type]
    )


def demo_report(model: str = "demo", aggregates: tuple[object, ...] = ()) -> Report:
    """Five claims: three pass, one fails, one is an error."""
    return Report(
        spec="specs/demo.circ",
        model=model,
        weights="w.safetensors",
        claims=(
            claim("a->b.excites", "pass", 1.5, 3),
            claim("a->c.excites", "pass", 2.5, 4),
            claim("d->c.excites", "fail", 0.25, 5),
            claim("e->c.excites", "error", float("nan"), 6),
            claim("f->c.excites", "pass", 3.0, 7),
        ),
        circuit="demo",
        selections=("curve = top 1 of conv2 by curve(): conv2:16 (z 3.1 at 185)",),
        selection_data=(
            {
                "name": "curve",
                "selector": "top 1 of conv2 by curve()",
                "rank": 1,
                "unit": "conv2:16",
                "layer": "conv2",
                "channel": 16,
                "score": 3.1,
                "selectivity": 0.5,
                "response": 6.2,
                "value": 185.0,
                "bin": None,
            },
        ),
        aggregates=aggregates,
        provenance=dict(PROVENANCE),
    )


AGGREGATE = {
    "source": "specs/demo.circ:20",
    "text": "for a in early_curve, b in curve { a -> b : excites where x }",
    "status": "pass",
    "passed": 17,
    "of": 25,
    "base_rate": 0.11,
    "p_value": 0.0005,
}
