"""`circ layers MODEL`: the table of a model's addressable layers.

Input: a `ModelAdapter`. Output: text, one layer per line in network order, with
channel count, kernel size, receptive field, stride and padding (in input pixels,
`circuitdsl.models.geometry`; "-" behind a global operation) and kind, and for
concatenations the channel range of each branch (so `mixed3b:379` can be read as
`mixed3b_5x5:59`).
"""

from __future__ import annotations

from circuitdsl.models.base import ModelAdapter


def format_layers(adapter: ModelAdapter, *, branches: bool = True) -> str:
    """Every addressable layer of `adapter` with channels, kernel size and kind."""
    also: dict[str, list[str]] = {}
    for alias, canonical in adapter.aliases().items():
        also.setdefault(canonical, []).append(alias)
    layers = [layer for layer in adapter.layers() if layer.name not in adapter.aliases()]
    width = max([len(layer.name) for layer in layers] + [5])
    lines = [
        f"model {adapter.name}"
        + (f" (weights {adapter.weights_path})" if adapter.weights_path else ""),
        f"{'layer':<{width}}  {'channels':>8}  {'kernel':>6}  {'rf':>4}  {'stride':>6}"
        f"  {'pad':>4}  kind",
    ]
    for layer in layers:
        kernel = f"{layer.kernel_size[0]}x{layer.kernel_size[1]}" if layer.kernel_size else "-"
        extra = f"  (also {', '.join(sorted(also[layer.name]))})" if layer.name in also else ""
        rf, stride, pad = _geometry(adapter, layer.name)
        lines.append(
            f"{layer.name:<{width}}  {layer.channels:>8}  {kernel:>6}  {rf:>4}  {stride:>6}"
            f"  {pad:>4}  {layer.kind}{extra}"
        )
        if branches and layer.kind == "concat":
            parts = []
            channel = 0
            while channel < layer.channels:
                found = adapter.branch_of(layer.name, channel)
                if found is None:
                    break
                branch = found[0]
                size = adapter.layer(branch).channels
                parts.append(f"{channel}-{channel + size - 1} {branch}")
                channel += size
            if parts:
                lines.append(" " * (width + 2) + "= " + ", ".join(parts))
    lines.append(f"{len(layers)} layers" + (f", {len(adapter.aliases())} aliases" if also else ""))
    return "\n".join(lines) + "\n"


def _geometry(adapter: ModelAdapter, name: str) -> tuple[str, str, str]:
    """(receptive field, stride, padding) along rows, as text ("-" when global)."""
    graph = adapter.graph
    from circuitdsl.models.geometry import geometries

    geom = geometries(graph).get(graph.layer_node[name])
    if geom is None:
        return "-", "-", "-"

    def show(pair: tuple[int, int]) -> str:
        return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"

    return show(geom.field), show(geom.stride), show(geom.padding)
