"""A circuit (and optionally its report) as Graphviz DOT text, in the style of Distill.

Layout, in the spirit of the Circuits articles' figures:

* one rank per layer, in network order (inputs at the top by default), with the
  layer's name at the start of its rank;
* a feature is a box: its name, `layer:channel`, its label and its image if given;
* a family is one box with a cell per member (channel and parameter, e.g. `243°`);
  edges to single members attach to that member's cell;
* claims between two features become one edge per (source, target) pair, coloured
  by the claimed sign (orange-red excites, blue inhibits, grey anything else), one
  label line per claim; with a report each line carries ✓/✗ and the measured
  number, the edge is dashed if any claim on it fails, its width follows the
  measured strength, and the measured kernel is drawn above the text as a small
  red-white-blue heatmap (an HTML-like table, so the DOT stays self-contained);
* many claims between the members of two families (e.g. the 10×10 pairs of a
  `for a in early_curve, b in curve` quantifier) collapse into a *weight grid*
  node between the two families: rows are source members, columns target members,
  each cell the pair's kernel (or its claimed sign), as in the articles' weight
  matrices;
* claims with no edge (`within`, `banded`, activation tests) become notes beside
  their subject.

The output is deterministic: everything is emitted in the circuit's own order and
numbers are formatted with fixed precision, so it can be golden-tested.
"""

from __future__ import annotations

import itertools
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from circuitdsl.language.diagnostics import Span
from circuitdsl.language.ir import Circuit, Claim, Family, Feature
from circuitdsl.report.model import ClaimResult, Report
from circuitdsl.report.style import (
    EXCITE_COLOR,
    EXCITES,
    INHIBIT_COLOR,
    INHIBITS,
    NEUTRAL_COLOR,
    STATUS_COLOR,
    STATUS_GLYPH,
    claim_phrase,
    claim_sign,
    feature_params,
    format_number,
    kernel_scale,
    weight_hex,
)

__all__ = ["RANKDIRS", "layer_order", "to_dot"]

RANKDIRS = ("TB", "LR", "BT", "RL")
FONT = "Helvetica"
# The smallest text on a diagram (weight-grid headers and marks): 8pt is 10.7 CSS px at
# the HTML report's 100% zoom, readable; 7pt was 9.3 px and less once scaled to a page.
GRID_PT = 8
# Members per row of a family box: wider boxes push the whole figure off a page.
FAMILY_ROW = 12


@dataclass
class _PairEdge:
    """All claims about one (source, target) pair that are drawn as a single edge."""

    source: str
    target: str
    claims: list[Claim] = field(default_factory=list)


@dataclass
class _Grid:
    """Claims between the members of two families, drawn as one weight-grid node."""

    source: Family
    target: Family
    pairs: dict[tuple[str, str], list[Claim]] = field(default_factory=dict)
    family_claims: list[Claim] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return f"G:{self.source.name}->{self.target.name}"

    def claims(self) -> list[Claim]:
        seen: dict[str, Claim] = {}
        for claims in (*self.pairs.values(), self.family_claims):
            for c in claims:
                seen.setdefault(c.id, c)
        return list(seen.values())


def to_dot(
    circuit: Circuit,
    report: Report | None = None,
    *,
    layer_order: Sequence[str] | None = None,
    rankdir: str = "TB",
    node_images: Mapping[str, str | Path] | None = None,
    bundle_threshold: int = 4,
    title: bool = True,
) -> str:
    """Render `circuit` as deterministic Graphviz DOT text.

    `report`, when given, adds verdict marks, measured numbers, widths and kernel
    heatmaps. `layer_order` overrides the inferred network order of the layers;
    `rankdir` is Graphviz's (`TB`: inputs at the top). `node_images` maps feature
    names to PNG files shown inside the nodes (e.g. feature visualisations).
    Claims between members of two different families are drawn as one weight grid
    once there are at least `bundle_threshold` member pairs. `title=False` leaves
    out the heading and legend (for embedding in a page that has its own).
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    return _DotWriter(
        circuit, report, layer_order, rankdir, node_images or {}, bundle_threshold, title
    ).write()


def layer_order(circuit: Circuit, explicit: Sequence[str] | None = None) -> list[str]:
    """The circuit's layers in network order.

    With `explicit`, its order wins and layers it does not name follow in order of
    appearance. Otherwise claims define the order (a claim's source layer comes
    before its target layer), ties broken by where a layer first appears in the
    spec; if the claims contradict each other, appearance order alone is used.
    """
    seen: list[str] = []
    for layer in [f.layer for f in circuit.features] + [f.layer for f in circuit.families]:
        if layer not in seen:
            seen.append(layer)
    if explicit is not None:
        pos = {name: i for i, name in enumerate(explicit)}
        return sorted(seen, key=lambda lay: (pos.get(lay, len(pos)), seen.index(lay)))

    node_layer = {f.name: f.layer for f in circuit.features}
    node_layer.update({f.name: f.layer for f in circuit.families})
    after: dict[str, set[str]] = {lay: set() for lay in seen}
    for claim in circuit.claims:
        for src, dst in claim.edges:
            a, b = node_layer.get(src), node_layer.get(dst)
            if a and b and a != b:
                after[a].add(b)
    indegree = {lay: 0 for lay in seen}
    for succ in after.values():
        for b in succ:
            indegree[b] += 1
    order: list[str] = []
    ready = [lay for lay in seen if indegree[lay] == 0]
    while ready:
        # Kahn's algorithm, always taking the earliest-declared ready layer, so the
        # result is stable and follows the spec where the claims do not decide.
        ready.sort(key=seen.index)
        lay = ready.pop(0)
        order.append(lay)
        for b in sorted(after[lay], key=seen.index):
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    return order if len(order) == len(seen) else seen


# ---- escaping -----------------------------------------------------------------------


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def _h(text: str) -> str:
    """Text inside a Graphviz HTML-like label."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _attrs(pairs: Sequence[tuple[str, str]]) -> str:
    parts = []
    for key, value in pairs:
        # HTML-like labels are `<...>`; everything else is quoted.
        parts.append(f"{key}={value}" if value.startswith("<") else f"{key}={_q(value)}")
    return "[" + ", ".join(parts) + "]"


# ---- pieces of labels -----------------------------------------------------------------


def kernel_table(
    kernel: Sequence[Sequence[float]], scale: float | None = None, cell: int | None = None
) -> str:
    """A kernel as an HTML-like `<TABLE>` of coloured cells, row 0 at the top.

    `scale` is the magnitude that saturates the colour (default: the kernel's own
    largest |weight|, so its strongest weight is the saturated red or blue).
    """
    rows = [list(r) for r in kernel]
    n = max((len(r) for r in rows), default=0)
    if not rows or n == 0:
        return ""
    if scale is None:
        scale = kernel_scale([rows])
    if cell is None:
        # Small kernels get readable cells; big expanded kernels stay about 50pt wide.
        cell = max(3, min(9, 54 // max(n, len(rows))))
    # A fixed-size table: Graphviz otherwise stretches a nested table to fill its
    # cell, which pulls the kernel's pixels apart under a wide text line.
    width, height = n * cell + 2, len(rows) * cell + 2
    out = [
        f'<TABLE BORDER="1" COLOR="#9a9a9a" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0" '
        f'FIXEDSIZE="TRUE" WIDTH="{width}" HEIGHT="{height}">'
    ]
    for row in rows:
        cells = "".join(
            f'<TD BGCOLOR="{weight_hex(v, scale)}" WIDTH="{cell}" HEIGHT="{cell}" '
            f'FIXEDSIZE="TRUE"></TD>'
            for v in row
        )
        out.append(f"<TR>{cells}</TR>")
    out.append("</TABLE>")
    return "".join(out)


def _main_stat(result: ClaimResult) -> str:
    """`z=2.31`: the statistic the verdict turned on, for an edge label."""
    for stat in list(result.expected) + list(result.measured):
        if stat in result.measured:
            value = result.measured[stat]
            if isinstance(value, (int, float)):
                return f"{stat}={format_number(value)}"
    return ""


def _wrap_h(text: str, width: int = 64) -> str:
    """`text` escaped, broken into left-aligned lines: Graphviz never wraps by itself."""
    parts = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]
    return '<BR ALIGN="LEFT"/>'.join(_h(p) for p in parts)


def _member_view(result: ClaimResult, member: str) -> tuple[str, str] | None:
    """A union claim's verdict on one member's edge, from its own statistic `z[member]`.

    A union fails as a whole when its weakest member does; on the diagram each
    member's edge shows that member's number and whether it alone meets the threshold
    (`Expected.holds`: the report's threshold objects, never their text).
    """
    if result.status == "error":
        return None
    for stat, want in result.expected.items():
        value = result.measured.get(f"{stat}[{member}]")
        if not isinstance(value, (int, float)):
            continue
        ok = want.holds(float(value))
        return ("pass" if ok else "fail"), f"{stat}={format_number(value)}"
    return None


def _line_view(result: ClaimResult | None, member: str | None) -> tuple[str | None, str]:
    """(status, `stat=value`) for one claim's line on an edge from `member`."""
    if result is None:
        return None, ""
    view = _member_view(result, member) if member else None
    return view if view else (result.status, _main_stat(result))


def _claim_line(
    claim: Claim,
    result: ClaimResult | None,
    *,
    phrase: str | None = None,
    member: str | None = None,
) -> str:
    text = _wrap_h(phrase if phrase is not None else claim_phrase(claim))
    status, stat = _line_view(result, member)
    if status is None:
        return text
    glyph = STATUS_GLYPH.get(status, "?")
    colour = STATUS_COLOR.get(status, NEUTRAL_COLOR)
    tail = f" ({_h(stat)})" if stat else ""
    # A non-breaking space: Graphviz drops a plain one after a font change.
    return f'<FONT COLOR="{colour}">{glyph}</FONT>&#160;{text}{tail}'


def _strength(results: Sequence[ClaimResult], member: str | None = None) -> float | None:
    """The largest |z| measured on an edge: how far the weight sum is from zero."""
    best: float | None = None
    for r in results:
        for stat in ("z", "abs_z"):
            # A union's own number is its weakest member's; the member's is truer here.
            v = r.measured.get(f"{stat}[{member}]", r.measured.get(stat))
            if isinstance(v, (int, float)) and math.isfinite(v):
                best = max(best or 0.0, abs(float(v)))
    return best


def _edge_sign(claims: Sequence[Claim]) -> str | None:
    # The first signed claim states the connection; later ones (e.g. "inhibits at
    # bottom" after "excites at top") refine where in the kernel.
    for claim in claims:
        sign = claim_sign(claim)
        if sign:
            return sign
    return None


def _sign_colour(sign: str | None) -> str:
    return {EXCITES: EXCITE_COLOR, INHIBITS: INHIBIT_COLOR}.get(sign or "", NEUTRAL_COLOR)


def _worst(results: Sequence[ClaimResult]) -> str | None:
    statuses = {r.status for r in results}
    for status in ("fail", "error", "pass"):
        if status in statuses:
            return status
    return None


class _DotWriter:
    def __init__(
        self,
        circuit: Circuit,
        report: Report | None,
        order: Sequence[str] | None,
        rankdir: str,
        images: Mapping[str, str | Path],
        bundle_threshold: int,
        title: bool,
    ) -> None:
        self.c = circuit
        self.report = report
        self.rankdir = rankdir
        self.images = {k: str(v) for k, v in images.items()}
        self.bundle_threshold = bundle_threshold
        self.title = title
        self.layers = layer_order(circuit, order)
        self.results: dict[str, ClaimResult] = {r.id: r for r in report.claims} if report else {}
        self.kernels: dict[str, list[list[float]]] = {}
        if report:
            for r in report.claims:
                for key, kernel in r.kernels.items():
                    self.kernels.setdefault(key.replace(" ", ""), kernel)
            # the full grid of a family pair (`--full-grid`): unclaimed pairs too
            for key, kernel in getattr(report, "grid_kernels", {}).items():
                self.kernels.setdefault(key.replace(" ", ""), kernel)
        self.features = {f.name: f for f in circuit.features}
        self.families = {f.name: f for f in circuit.families}
        # member name -> (family, index); only families the circuit declares are boxed.
        self.member_of: dict[str, tuple[Family, int]] = {}
        for fam in circuit.families:
            for i, m in enumerate(fam.members):
                self.member_of.setdefault(m, (fam, i))
        self.pair_edges: dict[tuple[str, str], _PairEdge] = {}
        self.grids: dict[tuple[str, str], _Grid] = {}
        self.notes: dict[str, list[Claim]] = {}
        self.loose: list[Claim] = []
        self._route()

    # ---- routing claims to edges, grids and notes ----------------------------------
    def _family_of(self, name: str) -> Family | None:
        if name in self.families:
            return self.families[name]
        if name in self.member_of:
            return self.member_of[name][0]
        return None

    def _route(self) -> None:
        member_pairs: dict[tuple[str, str], set[tuple[str, str]]] = {}
        family_level: set[tuple[str, str]] = set()
        for claim in self.c.claims:
            for src, dst in claim.edges:
                fs, ft = self._family_of(src), self._family_of(dst)
                if fs is None or ft is None or fs.name == ft.name:
                    continue
                key = (fs.name, ft.name)
                if src in self.member_of and dst in self.member_of:
                    member_pairs.setdefault(key, set()).add((src, dst))
                elif src in self.families and dst in self.families:
                    family_level.add(key)
        for key in sorted(set(member_pairs) | family_level, key=self._pair_order):
            many = len(member_pairs.get(key, ())) >= self.bundle_threshold
            if many or (key in family_level and self._grid_kernels(key)):
                self.grids[key] = _Grid(self.families[key[0]], self.families[key[1]])

        for claim in self.c.claims:
            if not claim.edges:
                subject = self._subject(claim)
                if subject is None:
                    self.loose.append(claim)
                else:
                    self.notes.setdefault(subject, []).append(claim)
                continue
            for src, dst in claim.edges:
                fs, ft = self._family_of(src), self._family_of(dst)
                grid = self.grids.get((fs.name, ft.name)) if fs and ft else None
                if grid is not None:
                    if src in self.member_of and dst in self.member_of:
                        grid.pairs.setdefault((src, dst), []).append(claim)
                    elif claim not in grid.family_claims:
                        # Family-level (or member-to-family) claims have no cell;
                        # they are listed under the grid.
                        grid.family_claims.append(claim)
                    continue
                edge = self.pair_edges.setdefault((src, dst), _PairEdge(src, dst))
                if claim not in edge.claims:
                    edge.claims.append(claim)

    def _pair_order(self, key: tuple[str, str]) -> tuple[int, int]:
        names = list(self.families)
        return (names.index(key[0]), names.index(key[1]))

    def _grid_kernels(self, key: tuple[str, str]) -> bool:
        src, dst = self.families[key[0]], self.families[key[1]]
        return any(f"{a}->{b}" in self.kernels for a in src.members for b in dst.members)

    def _subject(self, claim: Claim) -> str | None:
        candidates = list(claim.subjects)
        subject = claim.payload.subject_name()
        if subject is not None:
            candidates.append(subject)
        for name in candidates:
            if name in self.member_of:
                # One note per family box, not one per member: a quantified `expect`
                # over ten curve detectors is one statement.
                return self.member_of[name][0].name
            if name in self.features or name in self.families:
                return name
        return None

    def _generic_text(self, claim: Claim) -> str:
        """The claim's text with its member subject replaced by the family's name."""
        text = " ".join(claim.text.split())
        subject = claim.payload.subject_name()
        for name in (*claim.subjects, subject):
            if isinstance(name, str) and name in self.member_of:
                text = text.replace(name, self.member_of[name][0].name)
        return text

    def _used(self) -> set[str]:
        """Every node name some claim mentions, and the families of mentioned members."""
        used: set[str] = set()
        for claim in self.c.claims:
            names = [n for edge in claim.edges for n in edge] + list(claim.subjects)
            subject = claim.payload.subject_name()
            if subject is not None:
                names.append(subject)
            for name in names:
                used.add(name)
                if name in self.member_of:
                    used.add(self.member_of[name][0].name)
        return used

    def _shown(self, name: str, span: Span | None, used: set[str]) -> bool:
        # A feature library pulled in by `import` would otherwise fill the picture
        # with nodes no claim of this circuit is about.
        imported = span is not None and span.file != self.c.path
        return name in used or not imported

    # ---- node ids and endpoints --------------------------------------------------
    def _node_id(self, name: str, *, port: bool = True) -> str:
        if name in self.families:
            return _q(f"F:{name}")
        if name in self.member_of:
            fam, i = self.member_of[name]
            return f"{_q('F:' + fam.name)}:{_q(f'm{i}')}" if port else _q(f"F:{fam.name}")
        return _q(f"f:{name}")

    def _layer_of(self, name: str) -> str | None:
        if name in self.families:
            return self.families[name].layer
        if name in self.member_of:
            return self.member_of[name][0].layer
        if name in self.features:
            return self.features[name].layer
        return None

    # ---- output -----------------------------------------------------------------
    def write(self) -> str:
        out: list[str] = [f"digraph {_q(self.c.name)} {{"]
        graph_attrs = [
            ("rankdir", self.rankdir),
            ("newrank", "true"),
            ("compound", "true"),
            ("nodesep", "0.35"),
            ("ranksep", "0.55"),
            ("fontname", FONT),
            ("bgcolor", "white"),
        ]
        if self.title:
            graph_attrs += [("labelloc", "t"), ("labeljust", "l"), ("label", self._title())]
        out.append(f"  graph {_attrs(graph_attrs)};")
        out.append(
            f"  node {_attrs([('fontname', FONT), ('fontsize', '10'), ('shape', 'plaintext')])};"
        )
        out.append(
            "  edge " + _attrs([("fontname", FONT), ("fontsize", "9"), ("arrowsize", "0.7")]) + ";"
        )

        # Nodes grouped by layer, so each layer is one rank.
        boxed = {m for fam in self.c.families for m in fam.members}
        used = self._used()
        by_layer: dict[str, list[str]] = {lay: [] for lay in self.layers}
        for fam in self.c.families:
            if self._shown(fam.name, fam.span, used):
                by_layer.setdefault(fam.layer, []).append(self._family_node(fam))
        for feat in self.c.features:
            if feat.name not in boxed and self._shown(feat.name, feat.span, used):
                by_layer.setdefault(feat.layer, []).append(self._feature_node(feat))
        # Endpoints named by claims but declared nowhere still get a (plain) node.
        for edge in self.pair_edges.values():
            for name in (edge.source, edge.target):
                if self._layer_of(name) is None and name not in self.features:
                    by_layer.setdefault("?", []).append(
                        f"    {_q('f:' + name)} {_attrs([('label', name), ('shape', 'box')])};"
                    )
                    self.features[name] = Feature(name, "?", (), ())
        for subject, claims in self.notes.items():
            layer = self._layer_of(subject) or "?"
            by_layer.setdefault(layer, []).append(self._note_node(subject, claims))

        layers = [lay for lay in by_layer if by_layer[lay]]
        for lay in layers:
            out.append(f"  subgraph {_q('rank:' + lay)} {{")
            out.append("    rank=same;")
            label_attrs = [("label", lay), ("fontcolor", "#777777"), ("fontsize", "11")]
            out.append(f"    {_q('L:' + lay)} {_attrs(label_attrs)};")
            out.extend(by_layer[lay])
            out.append("  }")
        # An invisible chain through the layer names keeps the ranks in network
        # order even where no claim connects two consecutive layers.
        for a, b in itertools.pairwise(layers):
            out.append(f"  {_q('L:' + a)} -> {_q('L:' + b)} [style=invis];")

        for grid in self.grids.values():
            out.extend(self._grid(grid))
        for edge in self.pair_edges.values():
            out.append(self._pair_edge(edge))
        for subject in self.notes:
            target = self._node_id(subject)
            note = _q("N:" + subject)
            attrs = [("style", "dotted"), ("arrowhead", "none"), ("color", NEUTRAL_COLOR)]
            out.append(f"  {note} -> {target} {_attrs(attrs)};")
        out.append("}")
        return "\n".join(out) + "\n"

    def _title(self) -> str:
        rows = [
            f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="16"><B>{_h(self.c.name)}</B></FONT></TD></TR>'
        ]
        if self.c.description:
            rows.append(f'<TR><TD ALIGN="LEFT">{_h(self.c.description)}</TD></TR>')
        for cite in self.c.citations:
            rows.append(
                f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9" COLOR="#555555">{_h(cite)}'
                "</FONT></TD></TR>"
            )
        if self.report is not None:
            s = self.report.summary
            model = self.report.model + (f" ({self.report.weights})" if self.report.weights else "")
            verdict = (
                f'<FONT COLOR="{STATUS_COLOR["pass"]}">{s["pass"]} ✓</FONT>  '
                f'<FONT COLOR="{STATUS_COLOR["fail"]}">{s["fail"]} ✗</FONT>'
                + (
                    f'  <FONT COLOR="{STATUS_COLOR["error"]}">{s["error"]} !</FONT>'
                    if s["error"]
                    else ""
                )
            )
            rows.append(
                f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="10">model {_h(model)}:  {verdict}'
                "</FONT></TD></TR>"
            )
        rows.append(f'<TR><TD ALIGN="LEFT">{self._legend()}</TD></TR>')
        if self.loose:
            lines = '<BR ALIGN="LEFT"/>'.join(self._grouped_lines(self.loose))
            rows.append(
                f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">{lines}<BR ALIGN="LEFT"/></FONT>'
                "</TD></TR>"
            )
        return '<<TABLE BORDER="0" CELLSPACING="1" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"

    def _legend(self) -> str:
        # Plain text, not a nested table: Graphviz stretches nested tables to the
        # cell's width, which would centre the legend under a long description.
        text = (
            f'<FONT COLOR="{EXCITE_COLOR}">━ excites</FONT>  '
            f'<FONT COLOR="{INHIBIT_COLOR}">━ inhibits</FONT>  '
            f'<FONT COLOR="{NEUTRAL_COLOR}">━ other claim</FONT>'
        )
        if self.report is not None:
            bar = "".join(
                f'<FONT COLOR="{weight_hex(v, 1.0)}">█</FONT>'
                for v in (-1.0, -0.66, -0.33, 0.0, 0.33, 0.66, 1.0)
            )
            text += f"     weight − {bar} +     ✓ holds  ✗ fails (dashed edge)"
        return f'<FONT POINT-SIZE="9">{text}</FONT>'

    def _image_cell(self, name: str, size: int) -> str:
        path = self.images.get(name)
        if not path:
            return ""
        return (
            f'<TR><TD FIXEDSIZE="TRUE" WIDTH="{size}" HEIGHT="{size}">'
            f'<IMG SRC="{_h(path)}" SCALE="TRUE"/></TD></TR>'
        )

    def _feature_node(self, feat: Feature) -> str:
        rows = [self._image_cell(feat.name, 64)] if feat.name in self.images else []
        rows.append(f"<TR><TD><B>{_h(feat.name)}</B></TD></TR>")
        # A feature declared by behaviour has no channels until a model is bound; an empty
        # <FONT></FONT> is a syntax error for graphviz, so name its layer instead.
        ref = feat.ref or f"{feat.layer} (chosen by behaviour)"
        rows.append(f'<TR><TD><FONT POINT-SIZE="9" COLOR="#444444">{_h(ref)}</FONT></TD></TR>')
        if feat.params:
            rows.append(f'<TR><TD><FONT POINT-SIZE="9">{_h(feature_params(feat))}</FONT></TD></TR>')
        if feat.label:
            rows.append(f'<TR><TD><FONT POINT-SIZE="9"><I>{_h(feat.label)}</I></FONT></TD></TR>')
        label = (
            '<<TABLE BORDER="1" COLOR="#555555" STYLE="rounded" CELLBORDER="0" CELLSPACING="0" '
            'CELLPADDING="3" BGCOLOR="#fafafa">' + "".join(rows) + "</TABLE>>"
        )
        attrs = [("label", label), ("tooltip", f"{feat.name} = {feat.ref}")]
        return f"    {_q('f:' + feat.name)} {_attrs(attrs)};"

    def _member_cell(self, fam: Family, i: int, name: str, min_w: int) -> str:
        feat = self.features.get(name)
        if feat is None:
            body = _h(name)
        else:
            ch = str(feat.channels[0]) if feat.is_channel else _h(feat.ref)
            body = f"<B>{_h(ch)}</B>"
            if feat.params:
                body += f'<BR/><FONT POINT-SIZE="8">{_h(feature_params(feat))}</FONT>'
        image = ""
        if name in self.images:
            image = (
                '<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR><TD FIXEDSIZE="TRUE" '
                f'WIDTH="40" HEIGHT="40"><IMG SRC="{_h(self.images[name])}" SCALE="TRUE"/></TD>'
                f"</TR><TR><TD>{body}</TD></TR></TABLE>"
            )
        return f'<TD PORT="m{i}" WIDTH="{min_w}" TOOLTIP="{_h(name)}">{image or body}</TD>'

    def _family_node(self, fam: Family) -> str:
        members = list(fam.members)
        # Members run across the rank: a row when layers stack top to bottom, a
        # column when they run left to right.
        per_row = 1 if self.rankdir in ("LR", "RL") else FAMILY_ROW
        width = min(len(members), per_row) or 1
        params = ", ".join(f"{n}: {t}" for n, t in fam.param_types)
        head = f"<B>{_h(fam.name)}</B>"
        if fam.label:
            head += f" <I>{_h(fam.label)}</I>"
        head += f'<BR/><FONT POINT-SIZE="9" COLOR="#444444">{_h(fam.layer)}'
        head += f" · {len(members)} members" + (f" · {_h(params)}" if params else "") + "</FONT>"
        rows = [f'<TR><TD COLSPAN="{width}" BGCOLOR="#eeeeee">{head}</TD></TR>']
        # A minimum width per member cell that covers the heading: otherwise Graphviz
        # gives the heading's extra width to the first few cells only.
        heading = max(len(fam.name) + len(fam.label or "") + 1, len(re.sub(r"<[^>]+>", "", head)))
        min_w = max(26, math.ceil(heading * 5.0 / width))
        for start in range(0, len(members), per_row):
            chunk = members[start : start + per_row]
            cells = "".join(
                self._member_cell(fam, start + j, m, min_w) for j, m in enumerate(chunk)
            )
            rows.append(f"<TR>{cells}</TR>")
        label = (
            '<<TABLE BORDER="1" COLOR="#555555" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3" '
            'BGCOLOR="#fafafa">' + "".join(rows) + "</TABLE>>"
        )
        return f"    {_q('F:' + fam.name)} {_attrs([('label', label)])};"

    def _note_node(self, subject: str, claims: Sequence[Claim]) -> str:
        lines = "".join(line + '<BR ALIGN="LEFT"/>' for line in self._grouped_lines(claims))
        label = f'<<FONT POINT-SIZE="9">{lines}</FONT>>'
        results = [self.results[c.id] for c in claims if c.id in self.results]
        worst = _worst(results)
        colour = STATUS_COLOR.get(worst or "", NEUTRAL_COLOR)
        attrs = [
            ("label", label),
            ("shape", "note"),
            ("color", colour),
            ("style", "dashed" if worst in ("fail", "error") else "solid"),
        ]
        return f"    {_q('N:' + subject)} {_attrs(attrs)};"

    def _grouped_lines(self, claims: Sequence[Claim]) -> list[str]:
        """One label line per statement: claims a quantifier made from one line merge."""
        groups: dict[str, list[Claim]] = {}
        for c in claims:
            groups.setdefault(self._generic_text(c), []).append(c)
        lines = []
        for text, group in groups.items():
            if len(group) == 1:
                lines.append(_claim_line(group[0], self.results.get(group[0].id), phrase=text))
                continue
            results = [self.results[c.id] for c in group if c.id in self.results]
            head = _wrap_h(text) + f" ×{len(group)}"
            if results:
                worst = _worst(results) or "pass"
                n_pass = sum(r.status == "pass" for r in results)
                glyph = f'<FONT COLOR="{STATUS_COLOR[worst]}">{STATUS_GLYPH[worst]}</FONT>'
                head = f"{glyph}&#160;{head} ({n_pass}/{len(results)} hold)"
            lines.append(head)
        return lines

    def _pair_edge(self, edge: _PairEdge) -> str:
        results = [self.results[c.id] for c in edge.claims if c.id in self.results]
        sign = _edge_sign(edge.claims)
        colour = _sign_colour(sign)
        kernel = self.kernels.get(f"{edge.source}->{edge.target}")
        rows = []
        # Graphviz 2.43 garbles the attributes of an edge between two nodes of the same
        # rank when it has a port ("Arrow type '1.5' unknown"), so such an edge joins
        # the family boxes and names its members in the label instead.
        flat = self._layer_of(edge.source) == self._layer_of(edge.target)
        use_ports = not (flat and (edge.source in self.member_of or edge.target in self.member_of))
        if not use_ports:
            rows.append(
                f'<TR><TD ALIGN="LEFT"><I>{_h(edge.source)} → {_h(edge.target)}</I></TD></TR>'
            )
        if kernel:
            rows.append(f"<TR><TD>{kernel_table(kernel)}</TD></TR>")
        src = edge.source
        for c in edge.claims:
            phrase = claim_phrase(c)
            if c.kind == "union" and len(c.edges) > 1:
                phrase += f", one of {len(c.edges)} inputs"
            line = _claim_line(c, self.results.get(c.id), phrase=phrase, member=src)
            rows.append(f'<TR><TD ALIGN="LEFT">{line}</TD></TR>')
        label = (
            '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
            + "".join(rows)
            + "</TABLE>>"
        )
        attrs = [("color", colour), ("label", label)]
        strength = _strength(results, src)
        if strength is not None:
            # |z| of 0..4 maps to 1..5pt, so a strong connection reads as heavy.
            attrs.append(("penwidth", f"{1.0 + min(strength, 4.0):.2f}"))
        else:
            attrs.append(("penwidth", "1.5"))
        statuses = {_line_view(self.results.get(c.id), src)[0] for c in edge.claims}
        if statuses & {"fail", "error"}:
            attrs.append(("style", "dashed"))
        if sign == INHIBITS:
            attrs.append(("arrowhead", "tee"))
        tooltip = "\n".join(c.text for c in edge.claims)
        attrs.append(("tooltip", tooltip))
        tail = self._node_id(edge.source, port=use_ports)
        head = self._node_id(edge.target, port=use_ports)
        return f"  {tail} -> {head} {_attrs(attrs)};"

    # ---- weight grids ----------------------------------------------------------------
    def _grid(self, grid: _Grid) -> list[str]:
        src_members = list(grid.source.members)
        dst_members = list(grid.target.members)
        pair_kernels = {
            (a, b): self.kernels[f"{a}->{b}"]
            for a in src_members
            for b in dst_members
            if f"{a}->{b}" in self.kernels
        }
        # One colour scale for the whole grid, as in the articles' weight matrices:
        # a weak pair should look weak next to a strong one.
        scale = kernel_scale(pair_kernels.values())
        n = max((max(len(r) for r in k) for k in pair_kernels.values() if k), default=0)
        cell = max(2, min(8, 36 // n)) if n else 6

        def header(name: str) -> str:
            feat = self.features.get(name)
            if feat is None:
                return _h(name)
            ch = str(feat.channels[0]) if feat.is_channel else feat.ref
            params = feature_params(feat)
            return _h(ch) + (f"<BR/>{_h(params)}" if params else "")

        all_claims = grid.claims()
        results = [self.results[c.id] for c in all_claims if c.id in self.results]
        signs = [claim_sign(c) for cs in grid.pairs.values() for c in cs]
        n_claims = len({c.id for cs in grid.pairs.values() for c in cs})
        counts = []
        if signs.count(EXCITES):
            counts.append(f"{signs.count(EXCITES)} excite")
        if signs.count(INHIBITS):
            counts.append(f"{signs.count(INHIBITS)} inhibit")
        caption = (
            f"<B>{_h(grid.source.name)} → {_h(grid.target.name)}</B>  "
            f"{len(src_members)}×{len(dst_members)}"
            + (
                f", {len(grid.pairs)} pairs, {n_claims} claims ({', '.join(counts)})"
                if grid.pairs
                else ""
            )
        )
        if results:
            s = {st: sum(r.status == st for r in results) for st in ("pass", "fail", "error")}
            caption += (
                f'  <FONT COLOR="{STATUS_COLOR["pass"]}">{s["pass"]} ✓</FONT>'
                f' <FONT COLOR="{STATUS_COLOR["fail"]}">{s["fail"]} ✗</FONT>'
            )
        width = len(dst_members) + 1
        # Fixed, equal columns: Graphviz hands any width the caption needs beyond the
        # columns' own to the first few columns, which skews the matrix.
        kernel_px = (n * cell + 2) if n else 0
        plain_caption = re.sub(r"<[^>]+>", "", caption)
        head_chars = max(
            (
                len(re.sub(r"<[^>]+>|&[a-z#0-9]+;", "x", part))
                for b in dst_members
                for part in header(b).split("<BR/>")
            ),
            default=0,
        )
        col_w = max(
            26,
            kernel_px + 6,
            math.ceil(head_chars * GRID_PT * 0.63 + 6),  # header text at GRID_PT
            math.ceil((len(plain_caption) * 5.0 - 30) / len(dst_members)),
        )
        kernel_h = kernel_px + (12 if results else 0) + 6
        rows = [f'<TR><TD COLSPAN="{width}"><FONT POINT-SIZE="10">{caption}</FONT></TD></TR>']
        heads = "".join(
            f'<TD WIDTH="{col_w}"><FONT POINT-SIZE="{GRID_PT}">{header(b)}</FONT></TD>'
            for b in dst_members
        )
        rows.append(f'<TR><TD><FONT POINT-SIZE="{GRID_PT}">from \\ to</FONT></TD>{heads}</TR>')
        for a in src_members:
            # Rows without any kernel stay low: a sparse grid should not be mostly air.
            row_h = kernel_h if any((a, b) in pair_kernels for b in dst_members) else 18
            size = f' WIDTH="{col_w}" HEIGHT="{row_h}" FIXEDSIZE="TRUE"'
            cells = [f'<TD ALIGN="RIGHT"><FONT POINT-SIZE="{GRID_PT}">{header(a)}</FONT></TD>']
            for b in dst_members:
                cells.append(
                    self._grid_cell(
                        grid.pairs.get((a, b), []), pair_kernels.get((a, b)), scale, cell, size
                    )
                )
            rows.append("<TR>" + "".join(cells) + "</TR>")
        for c in grid.family_claims:
            rows.append(
                f'<TR><TD COLSPAN="{width}" ALIGN="LEFT"><FONT POINT-SIZE="9">'
                f"{_claim_line(c, self.results.get(c.id))}</FONT></TD></TR>"
            )
        label = (
            '<<TABLE BORDER="1" COLOR="#555555" CELLBORDER="0" CELLSPACING="1" CELLPADDING="1" '
            'BGCOLOR="white">' + "".join(rows) + "</TABLE>>"
        )
        node = _q(grid.node_id)
        worst = _worst(results)
        edge_style = [("color", NEUTRAL_COLOR), ("penwidth", "1.5")]
        if worst in ("fail", "error"):
            edge_style.append(("style", "dashed"))
        return [
            f"  {node} {_attrs([('label', label)])};",
            f"  {_q('F:' + grid.source.name)} -> {node} "
            f"{_attrs([*edge_style, ('arrowhead', 'none')])};",
            f"  {node} -> {_q('F:' + grid.target.name)} {_attrs(edge_style)};",
        ]

    def _grid_cell(
        self,
        claims: Sequence[Claim],
        kernel: Sequence[Sequence[float]] | None,
        scale: float,
        cell: int,
        size: str,
    ) -> str:
        results = [self.results[c.id] for c in claims if c.id in self.results]
        worst = _worst(results)
        sign = _edge_sign(claims)
        mark = ""
        if worst:
            colour, glyph = STATUS_COLOR[worst], STATUS_GLYPH[worst]
            mark = f'<FONT POINT-SIZE="{GRID_PT}" COLOR="{colour}">{glyph}</FONT>'
        tip = "; ".join(c.text for c in claims)
        tip_attr = f' TOOLTIP="{_h(tip)}"' if tip else ""
        if kernel:
            border = STATUS_COLOR.get(worst or "", "#ffffff")
            body = kernel_table(kernel, scale, cell)
            if mark:
                body = (
                    '<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0">'
                    f"<TR><TD>{body}</TD></TR><TR><TD>{mark}</TD></TR></TABLE>"
                )
            thick = "2" if worst in ("fail", "error") else "1"
            return f'<TD BORDER="{thick}" COLOR="{border}"{size}{tip_attr}>{body}</TD>'
        if not claims:
            return f'<TD{size}><FONT POINT-SIZE="{GRID_PT}" COLOR="#cccccc">·</FONT></TD>'
        # No kernel (no report yet): the claimed sign as a tinted cell.
        bg = {EXCITES: "#fbd0c0", INHIBITS: "#c6dbef"}.get(sign or "", "#eeeeee")
        glyph = {EXCITES: "+", INHIBITS: "−"}.get(sign or "", "•")
        text = mark or f'<FONT POINT-SIZE="8">{glyph}</FONT>'
        return f'<TD BGCOLOR="{bg}"{size}{tip_attr}>{text}</TD>'
