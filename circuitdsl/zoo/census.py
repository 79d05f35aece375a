"""Call line and curve detectors in every conv layer of shipped models, as Markdown.

``python -m circuitdsl.zoo.census [MODEL ...]`` (default: the three curvenet seeds) prints,
per model, a count of curve / line / weak / silent channels per layer and a table of every
curve and line detector with its measured preferred orientation and selectivity. The
numbers in docs/zoo.md are this command's output, unedited.
"""

from __future__ import annotations

import argparse
from collections import Counter

from circuitdsl.measure.tuning import (
    FeatureCall,
    classify_channels,
    orientation_tuning,
    receptive_field,
)
from circuitdsl.zoo import ZOO, load_zoo_model

CONV_LAYERS = ("conv1", "conv2", "conv3")


def census(name: str) -> list[FeatureCall]:
    """Classify every channel of every conv layer of zoo model ``name``."""
    entry = ZOO[name]
    model = load_zoo_model(name)
    calls: list[FeatureCall] = []
    for layer in CONV_LAYERS:
        calls += classify_channels(model, layer, size=entry.input_size[-1])
    return calls


def census_markdown(name: str, calls: list[FeatureCall]) -> str:
    """Markdown section for one model: counts per layer, then the detector table."""
    model, size = load_zoo_model(name), ZOO[name].input_size[-1]
    out = [
        f"### {name}",
        "",
        "| layer | receptive field (px) | bend of r=5 arc (px) | curve | line | weak | silent |",
        "|---|---|---|---|---|---|---|",
    ]
    for layer in CONV_LAYERS:
        n = Counter(c.kind for c in calls if c.layer == layer)
        bend = next(c.bend for c in calls if c.layer == layer)
        out.append(
            f"| {layer} | {receptive_field(model, layer, size)} | {bend:.2f} | {n['curve']} "
            f"| {n['line']} | {n['weak']} | {n['silent']} |"
        )
    out += [
        "",
        "| layer | channel | kind | preferred orientation (deg) | selectivity | curve echo "
        "| curve/line peak |",
        "|---|---|---|---|---|---|---|",
    ]
    kind_order = {"curve": 0, "line": 1}
    detectors = [c for c in calls if c.kind in kind_order]
    detectors.sort(key=lambda c: (c.layer, kind_order[c.kind], c.orientation))
    for c in detectors:
        out.append(
            f"| {c.layer} | {c.channel} | {c.kind} | {c.orientation:g} | {c.selectivity:.3f} "
            f"| {c.echo:.2f} | {c.curve_vs_line:.2f} |"
        )
    for kind in ("weak", "silent"):
        chans = [f"{c.layer}:{c.channel}" for c in calls if c.kind == kind]
        if chans:
            out += ["", f"{kind}: {', '.join(chans)}"]
    # The first layer is too small to see curvature; its units are better described by
    # their (polarity-specific) edge tuning, which the line/curve census does not show.
    edges = orientation_tuning(model, "conv1", "edge", size=size)
    out += [
        "",
        "conv1 edge tuning (orientation = direction from the boundary to the bright side):",
        "",
        "| channel | preferred (deg) | selectivity | response to the opposite edge / peak |",
        "|---|---|---|---|",
    ]
    for r in sorted(edges.rows(), key=lambda r: r["preferred"]):
        out.append(
            f"| {r['channel']} | {r['preferred']:g} | {r['selectivity']:.3f} | {r['echo']:.2f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m circuitdsl.zoo.census", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "models", nargs="*", default=["curvenet", "curvenet-seed1", "curvenet-seed2"]
    )
    args = parser.parse_args(argv)
    for name in args.models:
        if name not in ZOO:
            parser.error(f"unknown zoo model {name!r}; shipped: {', '.join(ZOO)}")
        print(census_markdown(name, census(name)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
