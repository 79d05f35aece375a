"""`circ suggest`: draft a .circ spec from a unit's weights, keeping only claims that hold.

Input: a model adapter and a unit `LAYER:CH`. Output: a `Draft` whose `text` is a
formatted spec (the project's formatter, so `circ fmt --check` passes on it) with

* a header: `circuit`, `model` and comments saying it was drafted from weights and by
  which command;
* one feature for the unit and one per input (`circ inputs`' top K excitatory and
  top K inhibitory inputs; with depth 2 also the inputs of each of those);
* per input, the claims the weights suggest -- its sign (`excites`/`inhibits`), its
  dominant region (`excites at top`), the dominant region of the opposite sign
  (`inhibits at bottom`), `strongest at R` for excitatory inputs, and its rank
  (`among top N inputs`, N its rank by kernel norm).

Every candidate claim is measured by the checker on the same model with the default
thresholds before anything is written; candidates that do not pass are left out of
the spec and listed in a comment with their measured value, and the final text is
compiled and checked once more, so the draft passes `circ check` as written.
Thresholds are never changed to make a claim pass.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from circuitdsl.language.diagnostics import E_USAGE, Diagnostic, DiagnosticError
from circuitdsl.tools.inputs import Input, InputsReport, analyse, default_source

_MODEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z_][A-Za-z0-9_]*)?")


@dataclass
class EdgeDraft:
    """The candidate claims about one input -> unit connection, and what became of them."""

    src: str  # feature names
    dst: str
    inp: Input
    role: str  # "excitatory" | "inhibitory"
    candidates: list[str]
    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (claim, why)


@dataclass
class Draft:
    """A drafted spec and how it was made."""

    text: str
    reports: list[InputsReport]
    edges: list[EdgeDraft]
    notes: list[str]

    @property
    def n_claims(self) -> int:
        return sum(len(e.kept) for e in self.edges)

    @property
    def n_dropped(self) -> int:
        return sum(len(e.dropped) for e in self.edges)

    @property
    def n_features(self) -> int:
        return len({e.src for e in self.edges} | {e.dst for e in self.edges}) or 1


def feature_name(layer: str, channel: int) -> str:
    """A spec identifier for `layer:channel` (`mixed4b:237` -> `mixed4b_237`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", layer) + f"_{channel}"
    return name if re.match(r"[A-Za-z_]", name) else f"u_{name}"


def candidate_claims(inp: Input) -> list[str]:
    """The claims the statistics of one input suggest, strongest statement first."""
    sign = "excites" if inp.sign == "+" else "inhibits"
    other = "inhibits" if sign == "excites" else "excites"
    out = [sign]
    if inp.region not in (None, "diffuse"):
        out.append(f"{sign} at {inp.region}")
    if inp.opposite is not None:
        out.append(f"{other} at {inp.opposite}")
    if sign == "excites" and inp.region not in (None, "diffuse"):
        out.append(f"strongest at {inp.region}")
    out.append(f"among top {inp.rank} inputs")
    return out


def command_line(
    model: str,
    unit: str,
    *,
    source: str | None,
    top: int,
    depth: int,
    weights: str | None,
    output: str | None = None,
) -> str:
    """The `circ suggest` command that reproduces a draft (for its header comment)."""
    parts = ["circ", "suggest", model, unit]
    if source is not None:
        parts += ["--from", source]
    parts += ["--top", str(top), "--depth", str(depth)]
    if weights is not None:
        parts += ["--weights", str(weights)]
    if output is not None:
        parts += ["-o", output]
    return shlex.join(parts)


def _model_line(model: str) -> str:
    return f"model {model}" if _MODEL_NAME.fullmatch(model) else f'model "{model}"'


def _stats_comment(e: EdgeDraft) -> str:
    i = e.inp
    region = i.region or "none (1x1)"
    text = (
        f"# {i.ref} ({e.role}): rank {i.rank}, norm {i.norm:.4g} ({i.rel_norm:.3g} x RMS),"
        f" sum {i.total:+.4g} (z {i.z:+.3g}), region {region}"
    )
    if i.opposite:
        text += f", {'-' if i.sign == '+' else '+'}{i.opposite}"
    return text


def _why(result: Any) -> str:
    """`z = 0.62; needs z >= 1` from a ClaimResult."""
    if result.status == "error":
        return f"not measurable: {result.detail}"
    parts = []
    for stat, exp in result.expected.items():
        value = result.measured.get(stat)
        shown = "?" if value is None else f"{value:.3g}"
        parts.append(f"{stat} = {shown}, needs {stat} {exp}")
    return "; ".join(parts) or result.detail


def render(
    *,
    name: str,
    description: str,
    model: str,
    command: str,
    features: Sequence[tuple[str, str, str | None]],
    sections: Sequence[tuple[str, Sequence[EdgeDraft]]],
    claims_of: str,
    notes: Sequence[str] = (),
) -> str:
    """Spec text for a draft; `claims_of` is "candidates" or "kept"."""
    lines = [
        "# Drafted from the weights (not from activations) by:",
        f"#   {command}",
        "# Every claim below passed `circ check` on that model with the default thresholds",
        "# when it was drafted; candidate claims that did not are listed as comments.",
        "# Strength = L2 norm of the expanded kernel; rank = among every channel of the",
        "# source layer; kernel row 0 = the input row above the unit. Name the features!",
    ]
    if ":" in model and not model.startswith("torchvision:"):
        # A spec's factory is code and is refused without an opt-in (E220).
        lines.append(f"# The model is Python code: check with `--allow-factory {model}`.")
    lines += [f"# {n}" for n in notes]
    lines += [f'circuit {name} "{description}"', _model_line(model), ""]
    for fname, ref, comment in features:
        lines.append(f"feature {fname} = {ref}" + (f"  # {comment}" if comment else ""))
    for title, group in sections:
        lines += ["", f"# {title}"]
        for e in group:
            claims = e.candidates if claims_of == "candidates" else e.kept
            lines.append(_stats_comment(e))
            for text, why in e.dropped if claims_of == "kept" else ():
                lines.append(f"# not claimed: {text} ({why})")
            if claims:
                lines.append(f"{e.src} -> {e.dst} : {', '.join(claims)}")
    return "\n".join(lines) + "\n"


def _check(text: str, adapter: Any) -> list[Any]:
    """Compile `text`, bind it to `adapter` and return the checker's claim results."""
    from circuitdsl.api import loads
    from circuitdsl.check.engine import check
    from circuitdsl.models.bind import bind

    spec = loads(text, "<draft>")
    report = check(spec.circuit, bind(spec.circuit, adapter))
    return list(report.claims)


def suggest(
    adapter: Any,
    layer: str,
    channel: int,
    *,
    source: str | None = None,
    top: int = 3,
    depth: int = 1,
    model: str | None = None,
    weights: str | None = None,
    command: str | None = None,
) -> Draft:
    """Draft a spec for `layer:channel` of `adapter`'s model (see the module docstring).

    `model` is the name written on the spec's `model` line (default: the adapter's);
    `command` the command line quoted in the header (default: rebuilt from the args).
    """
    from circuitdsl.language.syntax.fmt import format_spec
    from circuitdsl.language.syntax.parser import parse

    if depth not in (1, 2):
        raise DiagnosticError([Diagnostic(E_USAGE, f"--depth must be 1 or 2 (got {depth})")])
    model = model or str(adapter.name)
    unit = f"{layer}:{channel}"
    command = command or command_line(
        model, unit, source=source, top=top, depth=depth, weights=weights
    )
    first = analyse(adapter, layer, channel, source=source, top=top)
    reports = [first]
    notes: list[str] = []
    target = feature_name(layer, channel)
    features: dict[str, tuple[str, str, str | None]] = {
        target: (target, unit, "the unit"),
    }
    sections: list[tuple[str, list[EdgeDraft]]] = []

    def unique(name: str, ref: str) -> str:
        """`name` for `ref`, suffixed where two layers' names map to one identifier."""
        base, n = name, 1
        while name in features and features[name][1] != ref:
            n += 1
            name = f"{base}_{n}"
        features.setdefault(name, (name, ref, None))
        return name

    def add_edges(rep: InputsReport, dst: str) -> list[EdgeDraft]:
        out = []
        for role, items in (("excitatory", rep.excitatory), ("inhibitory", rep.inhibitory)):
            for inp in items:
                name = unique(feature_name(rep.source, inp.channel), inp.ref)
                out.append(EdgeDraft(name, dst, inp, role, candidate_claims(inp)))
        how = "default source" if rep.source_default else "--from"
        title = (
            f"inputs of {rep.unit} from {rep.source} ({how}; {rep.n_inputs} channels,"
            f" {rep.kernel_size[0]}x{rep.kernel_size[1]} kernels)"
        )
        sections.append((title, out))
        return out

    edges = list(add_edges(first, target))
    deeper = depth == 2
    if deeper:
        try:
            default_source(adapter, first.source)
        except DiagnosticError as err:  # the first conv layer: depth 1 is all there is
            notes.append(f"depth 2 stops at {first.source}: {err.diagnostics[0].message}")
            deeper = False
    if deeper:
        for inp in [*first.excitatory, *first.inhibitory]:
            rep = analyse(adapter, first.source, inp.channel, top=top)
            reports.append(rep)
            edges += add_edges(rep, unique(feature_name(first.source, inp.channel), inp.ref))

    def draft_text(claims_of: str) -> str:
        return render(
            name="draft_" + target,
            description=f"inputs of {unit} in {model}, drafted from weights",
            model=model,
            command=command,
            features=list(features.values()),
            sections=sections,
            claims_of=claims_of,
            notes=notes,
        )

    # 1. measure every candidate claim at once
    results = _check(draft_text("candidates"), adapter)
    flat = [(e, c) for e in edges for c in e.candidates]
    if len(results) != len(flat):  # pragma: no cover - a compiler change would break this
        raise RuntimeError(f"{len(flat)} candidate claims compiled to {len(results)}")
    for (e, text), res in zip(flat, results, strict=True):
        if res.status == "pass":
            e.kept.append(text)
        else:
            e.dropped.append((text, _why(res)))
    # 2. write the survivors, formatted, and make sure the text passes as written
    text = format_spec(parse(draft_text("kept"), "<draft>"))
    final = _check(text, adapter)
    bad = [r for r in final if r.status != "pass"]
    if bad:  # pragma: no cover - claims are measured independently of each other
        raise RuntimeError(f"drafted claim {bad[0].id} does not pass: {bad[0].detail}")
    return Draft(text, reports, edges, notes)
