"""Hand-built circuits and fake reports for the renderer's tests.

The compiler is developed in parallel, so these are built directly as IR objects,
with the shapes `circuitdsl.load` will produce. Kernels are planted so tests know
exactly which cell must be the saturated red or blue.
"""

from __future__ import annotations

import math

from circuitdsl.language.diagnostics import Span
from circuitdsl.language.ir import Circuit, Claim, Family, Feature, Param, Threshold
from circuitdsl.language.kinds import (
    EquivarianceClaim,
    RankClaim,
    Region,
    RegionClaim,
    SignClaim,
    StrongestClaim,
    WithinClaim,
)
from circuitdsl.report.model import ClaimResult, Expected, Report

CAR_PATH = "specs/car.circ"
CAR_SOURCE = """\
# Zoom In (Olah et al. 2020), "Cars in Superposition".
circuit car_detector "A car detector is assembled from windows, car body and wheels"
  cite "Olah et al. 2020, Zoom In: An Introduction to Circuits, Distill"
model inceptionv1

feature windows  = mixed4b:237  "window detector"
feature car_body = mixed4b:491  "car body detector"
feature wheels   = mixed4b:373  "wheel detector"
feature car      = mixed4c:447  "car detector"

windows  -> car : excites at top,    inhibits at bottom
car_body -> car : excites,           strongest at bottom
wheels   -> car : excites at bottom, inhibits at top
wheels   -> car : among top 10 inputs
car within mixed4c_5x5
"""


def _span(line: int, col: int = 1, path: str = CAR_PATH) -> Span:
    return Span(path, line, col, line, col + 10)


def _feature(name: str, layer: str, ch: int, label: str | None = None, line: int = 0) -> Feature:
    return Feature(name, layer, (ch,), (1.0,), label=label, span=_span(line) if line else None)


def _region(sign: str, region: str) -> RegionClaim:
    return RegionClaim(sign, Region(name=region))


def car_circuit() -> Circuit:
    """Zoom In's car detector: three mixed4b features into mixed4c:447."""
    z_up = (Threshold("z", ">=", 1.0),)
    z_down = (Threshold("z", "<=", -1.0),)
    claims = (
        Claim(
            "car.windows_top",
            "region",
            "windows -> car : excites at top",
            (("windows", "car"),),
            payload=_region("excites", "top"),
            thresholds=z_up,
            span=_span(11, 19),
        ),
        Claim(
            "car.windows_bottom",
            "region",
            "windows -> car : inhibits at bottom",
            (("windows", "car"),),
            payload=_region("inhibits", "bottom"),
            thresholds=z_down,
            span=_span(11, 38),
        ),
        Claim(
            "car.car_body",
            "sign",
            "car_body -> car : excites",
            (("car_body", "car"),),
            payload=SignClaim("excites"),
            thresholds=z_up,
            span=_span(12, 19),
        ),
        Claim(
            "car.car_body_strongest",
            "strongest",
            "car_body -> car : strongest at bottom",
            (("car_body", "car"),),
            payload=StrongestClaim("excites", Region(name="bottom")),
            thresholds=(Threshold("margin", ">", 0.0),),
            span=_span(12, 38),
        ),
        Claim(
            "car.wheels_bottom",
            "region",
            "wheels -> car : excites at bottom",
            (("wheels", "car"),),
            payload=_region("excites", "bottom"),
            thresholds=z_up,
            span=_span(13, 19),
        ),
        Claim(
            "car.wheels_top",
            "region",
            "wheels -> car : inhibits at top",
            (("wheels", "car"),),
            payload=_region("inhibits", "top"),
            thresholds=z_down,
            span=_span(13, 38),
        ),
        Claim(
            "car.wheels_rank",
            "rank",
            "wheels -> car : among top 10 inputs",
            (("wheels", "car"),),
            payload=RankClaim(10, "any"),
            span=_span(14, 19),
        ),
        Claim(
            "car.car_within",
            "within",
            "car within mixed4c_5x5",
            (),
            ("car",),
            payload=WithinClaim("mixed4c_5x5"),
            thresholds=(Threshold("fraction", ">=", 1.0),),
            span=_span(15),
        ),
    )
    return Circuit(
        name="car_detector",
        description="A car detector is assembled from windows, car body and wheels",
        citations=("Olah et al. 2020, Zoom In: An Introduction to Circuits, Distill",),
        model="inceptionv1",
        features=(
            _feature("windows", "mixed4b", 237, "window detector", 6),
            _feature("car_body", "mixed4b", 491, "car body detector", 7),
            _feature("wheels", "mixed4b", 373, "wheel detector", 8),
            _feature("car", "mixed4c", 447, "car detector", 9),
        ),
        families=(),
        claims=claims,
        path=CAR_PATH,
        sources=(CAR_PATH,),
    )


def top_bottom_kernel(top: float, bottom: float, n: int = 5) -> list[list[float]]:
    """A kernel whose top rows are `top`, bottom rows `bottom`, middle row zero."""
    rows = []
    for r in range(n):
        value = top if r < n // 2 else bottom if r > n // 2 else 0.0
        rows.append([value * (1.0 - 0.1 * abs(c - n // 2)) for c in range(n)])
    return rows


def car_report(*, fail_wheels_top: bool = True) -> Report:
    """A fake check of `car_circuit()`: everything holds except `car.wheels_top`."""
    k_windows = top_bottom_kernel(0.8, -0.3)
    k_body = top_bottom_kernel(0.2, 0.6)
    k_wheels = top_bottom_kernel(0.1, 0.9)  # the top is *not* inhibitory: a planted failure

    def res(
        cid: str,
        status: str,
        text: str,
        edge: tuple[str, str] | None,
        kernel,
        measured: dict[str, float],
        expected: dict[str, Expected],
        line: int,
    ) -> ClaimResult:
        kernels = {f"{edge[0]}->{edge[1]}": kernel} if edge else {}
        return ClaimResult(
            cid,
            status,
            text,
            f"{CAR_PATH}:{line}",
            measured,
            expected,
            "" if status == "pass" else "measured value is on the wrong side",
            edges=(edge,) if edge else (),
            kernels=kernels,
        )

    wt = "fail" if fail_wheels_top else "pass"
    claims = (
        res(
            "car.windows_top",
            "pass",
            "windows -> car : excites at top",
            ("windows", "car"),
            k_windows,
            {"z": 2.41, "total": 1.2},
            {"z": Expected.parse("z", ">= 1")},
            11,
        ),
        res(
            "car.windows_bottom",
            "pass",
            "windows -> car : inhibits at bottom",
            ("windows", "car"),
            k_windows,
            {"z": -1.3, "total": -0.5},
            {"z": Expected.parse("z", "<= -1")},
            11,
        ),
        res(
            "car.car_body",
            "pass",
            "car_body -> car : excites",
            ("car_body", "car"),
            k_body,
            {"z": 3.1, "total": 2.0},
            {"z": Expected.parse("z", ">= 1")},
            12,
        ),
        res(
            "car.car_body_strongest",
            "pass",
            "car_body -> car : strongest at bottom",
            ("car_body", "car"),
            k_body,
            {"margin": 0.2, "share": 0.6},
            {"margin": Expected.parse("margin", "> 0")},
            12,
        ),
        res(
            "car.wheels_bottom",
            "pass",
            "wheels -> car : excites at bottom",
            ("wheels", "car"),
            k_wheels,
            {"z": 2.9, "total": 2.4},
            {"z": Expected.parse("z", ">= 1")},
            13,
        ),
        res(
            "car.wheels_top",
            wt,
            "wheels -> car : inhibits at top",
            ("wheels", "car"),
            k_wheels,
            {"z": 0.4, "total": 0.3},
            {"z": Expected.parse("z", "<= -1")},
            13,
        ),
        res(
            "car.wheels_rank",
            "pass",
            "wheels -> car : among top 10 inputs",
            ("wheels", "car"),
            k_wheels,
            {"rank": 3, "strength": 2.4},
            {"rank": Expected.parse("rank", "<= 10")},
            14,
        ),
        res(
            "car.car_within",
            "pass",
            "car within mixed4c_5x5",
            None,
            None,
            {"fraction": 1.0},
            {"fraction": Expected.parse("fraction", ">= 1")},
            15,
        ),
    )
    return Report(CAR_PATH, "inceptionv1", "inception5h.pth", claims, circuit="car_detector")


EARLY = {
    92: 11.0,
    145: 41.0,
    95: 78.5,
    71: 137.0,
    171: 174.0,
    147: 222.5,
    189: 267.5,
    81: 326.5,
    104: 350.5,
}
CURVE = {
    342: 22.5,
    388: 66.5,
    324: 91.5,
    340: 110.0,
    330: 145.0,
    349: 181.0,
    379: 243.0,
    406: 268.5,
    385: 290.0,
    343: 358.0,
}


def angle_between(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def _members(family: str, layer: str, table: dict[int, float]) -> tuple[Feature, ...]:
    return tuple(
        Feature(
            f"{family}[{ch}]",
            layer,
            (ch,),
            (1.0,),
            family=family,
            params=(Param("orientation", "angle", deg),),
        )
        for ch, deg in table.items()
    )


def curve_circuit() -> Circuit:
    """Curve Circuits: early curves (mixed3a) excite/inhibit curves (mixed3b) by orientation."""
    early = _members("early_curve", "mixed3a", EARLY)
    curve = _members("curve", "mixed3b", CURVE)
    fams = (
        Family("early_curve", "mixed3a", (("orientation", "angle"),), tuple(f.name for f in early)),
        Family(
            "curve",
            "mixed3b",
            (("orientation", "angle"),),
            tuple(f.name for f in curve),
            label="curve detectors",
        ),
    )
    loop = Span("specs/curves.circ", 16, 1, 18, 1)
    claims: list[Claim] = []
    for a in early:
        for b in curve:
            d = angle_between(float(a.param("orientation")), float(b.param("orientation")))
            if d <= 30:
                sign = "excites"
            elif d >= 150:
                sign = "inhibits"
            else:
                continue
            claims.append(
                Claim(
                    f"curves.{a.name}->{b.name}.{sign}",
                    "sign",
                    f"{a.name} -> {b.name} : {sign}",
                    ((a.name, b.name),),
                    payload=SignClaim(sign),
                    thresholds=(
                        Threshold(
                            "z",
                            ">=" if sign == "excites" else "<=",
                            1.0 if sign == "excites" else -1.0,
                        ),
                    ),
                    span=Span("specs/curves.circ", 17 if sign == "excites" else 18, 3, 17, 40),
                    origin=loop,
                )
            )
    claims.append(
        Claim(
            "curves.equivariance",
            "equivariance",
            "early_curve -> curve : equivariant under rotation(orientation)",
            (("early_curve", "curve"),),
            payload=EquivarianceClaim("rotation", "orientation", None),
            thresholds=(Threshold("correlation", ">=", 0.5),),
            span=Span("specs/curves.circ", 22, 1, 22, 60),
        )
    )
    return Circuit(
        name="curve_circuit",
        description="Curve detectors are built from earlier curves of the same orientation",
        citations=("Cammarata et al. 2021, Curve Circuits, Distill",),
        model="inceptionv1",
        features=early + curve,
        families=fams,
        claims=tuple(claims),
        path="specs/curves.circ",
        sources=("specs/curves.circ",),
    )


def oriented_kernel(deg: float, n: int = 5, gain: float = 1.0) -> list[list[float]]:
    """A line of positive weights at `deg` through the kernel centre, negative around it."""
    c = (n - 1) / 2
    t = math.radians(deg)
    dx, dy = math.cos(t), -math.sin(t)
    rows = []
    for r in range(n):
        row = []
        for col in range(n):
            x, y = col - c, r - c
            dist = abs(x * dy - y * dx)
            row.append(round(gain * (1.0 if dist < 0.6 else -0.25), 4))
        rows.append(row)
    return rows


def curve_report(*, failing: int = 2) -> Report:
    """A fake check of `curve_circuit()` with kernels for every pair; `failing` pairs fail."""
    circuit = curve_circuit()
    results = []
    n_fail = 0
    kernels_all: dict[str, list[list[float]]] = {}
    for a in circuit.members("early_curve"):
        for b in circuit.members("curve"):
            oa, ob = float(a.param("orientation")), float(b.param("orientation"))
            d = angle_between(oa, ob)
            gain = math.cos(math.radians(d))
            kernels_all[f"{a.name}->{b.name}"] = oriented_kernel(ob, gain=gain)
    for claim in circuit.claims:
        if claim.kind == "sign":
            src, dst = claim.edges[0]
            assert isinstance(claim.payload, SignClaim)
            sign = claim.payload.sign
            status = "pass"
            if sign == "inhibits" and n_fail < failing:
                status, n_fail = "fail", n_fail + 1
            z = 2.0 if sign == "excites" else (-2.0 if status == "pass" else 0.3)
            results.append(
                ClaimResult(
                    claim.id,
                    status,
                    claim.text,
                    f"specs/curves.circ:{claim.span.line}",
                    {"z": z},
                    {"z": str(claim.thresholds[0])},
                    edges=claim.edges,
                    kind="sign",
                    kernels={f"{src}->{dst}": kernels_all[f"{src}->{dst}"]},
                )
            )
        else:
            results.append(
                ClaimResult(
                    claim.id,
                    "pass",
                    claim.text,
                    "specs/curves.circ:22",
                    {"correlation": 0.82, "pairs": 90},
                    {"correlation": Expected.parse("correlation", ">= 0.5")},
                    edges=claim.edges,
                    kind="equivariance",
                    kernels=kernels_all,
                )
            )
    return Report("specs/curves.circ", "inceptionv1", None, tuple(results), circuit="curve_circuit")


def small_family_report() -> tuple[Circuit, Report]:
    """A 4x4 slice of the curve circuit, every pair claimed and measured: a golden-sized grid."""
    full = curve_circuit()
    early = [m for m in full.members("early_curve")][:4]
    curve = [m for m in full.members("curve")][:4]
    fams = (
        Family("early_curve", "mixed3a", (("orientation", "angle"),), tuple(f.name for f in early)),
        Family("curve", "mixed3b", (("orientation", "angle"),), tuple(f.name for f in curve)),
    )
    claims = []
    results = []
    for i, a in enumerate(early):
        for j, b in enumerate(curve):
            sign = "excites" if i == j else "inhibits"
            claim = Claim(
                f"{a.name}->{b.name}",
                "sign",
                f"{a.name} -> {b.name} : {sign}",
                ((a.name, b.name),),
                payload=SignClaim(sign),
            )
            claims.append(claim)
            kernel = oriented_kernel(
                float(b.param("orientation")), n=3, gain=1.0 if i == j else -0.5
            )
            status = "fail" if (i, j) == (0, 3) else "pass"
            results.append(
                ClaimResult(
                    claim.id,
                    status,
                    claim.text,
                    "x:1",
                    {"z": 1.5 if i == j else -1.5},
                    {"z": Expected.parse("z", ">= 1")},
                    kernels={f"{a.name}->{b.name}": kernel},
                )
            )
    circuit = Circuit("small_family", None, (), None, (*early, *curve), fams, tuple(claims))
    return circuit, Report("x", "m", None, tuple(results))
