"""Weight edits for `predict` claims, always applied to a copy of the model.

Three kinds of edit, each recorded with enough to undo it exactly (`EditedModel.restore`):

* **ablation** (``ablate F``): F is removed from its layer's output in every forward
  pass. A unit (or a family of units) has its channels set to exactly zero; a
  direction ``d`` is projected out, ``x <- x - U U^T x`` with U an orthonormal basis of
  the directions (a family of directions: of their span), so the activity orthogonal to
  it is kept. Implemented in the graph: the layer's node becomes ``x + back(proj(x))``
  with two bias-free 1x1 convolutions.
* **direct conv** (``remove|scale [positive|negative] (A -> B)``, B's layer is, up to
  channel-wise operations (ReLU, BatchNorm, pools, pads), the output of one ungrouped
  convolution, called once, whose input is, up to the same operations, A's layer): that
  convolution's parameters are edited, as the Circuits articles do.
* **linear-path correction** (any other pair the adapter connects: a bottleneck and a
  concatenation in between, a ResNet block, several layers): the target's
  *pre-activation* (its node with elementwise nonlinearities and concatenations
  stripped, e.g. ``mixed3b_5x5_pre_relu`` for a 5x5-branch unit of ``mixed3b``) gets an
  exact correction added, a convolution of the *source's* output computing
  ``(W_edited - W_expanded) * source`` (select source channels, pad, strided conv,
  scatter into the target's channels: bias-free convolutions and one pad), so that the
  linearised map source -> target becomes ``W_edited`` while every other channel pair,
  and every nonlinear part of the path, stays as it was (docs/weights.md).

What is edited: the weights between A and B are seen in bases of A's and B's channel
spaces (one-hot for units and families of units, their coefficient signs kept; an
orthonormalised basis for directions); ``M = U_B^T W U_A`` holds one kernel per basis
pair. ``remove`` multiplies the selected taps of M by 0 and ``scale ... by X`` by X;
``positive`` (``negative``) selects only the taps > 0 (< 0). For units this is exactly
"the weights from A's channels into B's channels". W is the expanded block for a
correction and the conv's own kernel, BatchNorm folded, for a direct edit.

Edits compose: each is computed on the model as the edits before it left it (the
linearisation is rebuilt when an earlier edit touched the path).

The caller's module, its parameters and the adapter's cache of expanded weights are
never touched: `edited_copy` deep-copies the traced graph module first.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from circuitdsl.language.diagnostics import Unmeasurable
from circuitdsl.language.kinds import Edit
from circuitdsl.models.weights import Block, NotLinearisable, expanded_weights

# LinOp kinds that map channel i of their input to channel i of their output.
_CHANNELWISE = ("identity", "scale", "avgpool", "pad")

DIRECT = "direct conv"
CORRECTION = "linear-path correction"
ABLATION = "ablation"


class EditError(Unmeasurable):
    """An edit that cannot be applied to this model (the claim is reported as an error)."""


@dataclass
class AppliedEdit:
    """One applied edit: its kind, a sentence, and what `restore` needs to undo it."""

    kind: str  # DIRECT | CORRECTION | ABLATION
    note: str
    weights_changed: int = 0
    params: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    rewired: list[tuple[fx.Node, str, Any, Any, Any]] = field(default_factory=list)
    replaced: list[tuple[fx.Node, fx.Node]] = field(default_factory=list)
    nodes: list[fx.Node] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # original node names whose value changed


@dataclass
class EditedModel:
    """A deep copy of the model's graph module with the edits applied.

    Every edit lives in `gm` itself (node names are kept: reading a layer of the edited
    model reads its edited value). `ablate` is empty, kept for `Runner`'s interface;
    `notes` says, per edit, exactly what was changed and how (`kinds`).
    """

    gm: fx.GraphModule
    ablate: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    weights_changed: int = 0
    applied: list[AppliedEdit] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        """The kind of every applied edit, in order (`direct conv`, ...)."""
        return [a.kind for a in self.applied]

    def restore(self) -> None:
        """Undo every edit, newest first: `gm` is bit-identical to the unedited copy again."""
        for a in reversed(self.applied):
            _undo(self.gm, a)
        self.applied.clear()
        self.notes.clear()
        self.weights_changed = 0
        self.gm.recompile()


# ---- bases of feature spaces ------------------------------------------------------


def _basis(members: Sequence[Any]) -> tuple[list[int], torch.Tensor]:
    """Channels and an orthonormal basis ``[len(channels), r]`` of the members' span.

    Units (one channel each) give signed one-hot columns, so that the edit of a unit
    pair is exactly an edit of that weight; directions are orthonormalised (QR).
    """
    chans = sorted({c for m in members for c in m.channels})
    pos = {c: k for k, c in enumerate(chans)}
    if all(len(m.channels) == 1 for m in members):
        cols: dict[int, float] = {}
        for m in members:
            cols.setdefault(m.channels[0], 1.0 if m.coefficients[0] >= 0 else -1.0)
        u = torch.zeros(len(chans), len(cols))
        for k, (c, sgn) in enumerate(sorted(cols.items())):
            u[pos[c], k] = sgn
        return chans, u
    v = torch.zeros(len(chans), len(members), dtype=torch.float64)
    for j, m in enumerate(members):
        for c, coef in zip(m.channels, m.coefficients, strict=True):
            v[pos[c], j] += float(coef)
    q, r = torch.linalg.qr(v)
    diag = r.diagonal().abs()
    keep = diag > 1e-9 * float(diag.max()) if diag.numel() else diag > 0
    if not bool(keep.any()):
        raise EditError("the directions of this edit are all zero")
    # QR's sign is arbitrary: orient each column along its member (r_jj > 0), so that
    # `positive` and `negative` mean the same as in the direction's own kernel.
    q = q * torch.sign(r.diagonal() + (r.diagonal() == 0))[None]
    return chans, q[:, keep].float()


def _edit_kernels(
    w: torch.Tensor, ud: torch.Tensor, uc: torch.Tensor, factor: float, part: str
) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """The change of ``w[n_d, n_s, kh, kw]`` that edits ``M = ud^T w uc`` (module doc).

    Returns (delta, mask in basis coordinates, taps changed, sum of the changed taps).
    """
    m = torch.einsum("or,oihw,is->rshw", ud, w, uc)
    if part == "positive":
        mask = m > 0
    elif part == "negative":
        mask = m < 0
    else:
        mask = torch.ones_like(m, dtype=torch.bool)
    d = torch.where(mask, m * (factor - 1.0), torch.zeros_like(m))
    delta = torch.einsum("or,rshw,is->oihw", ud, d, uc)
    return delta, mask, int(mask.sum()), float(m[mask].sum())


# ---- graph surgery ------------------------------------------------------------------


def _fx_nodes(gm: fx.GraphModule) -> dict[str, fx.Node]:
    return {n.name: n for n in gm.graph.nodes}


def _fresh(gm: fx.GraphModule, stem: str) -> str:
    names = [n for n, _ in gm.named_children()]
    k = 0
    while any(n.startswith(f"{stem}{k}_") for n in names):
        k += 1
    return f"{stem}{k}"


def _module(gm: fx.GraphModule, rec: AppliedEdit, name: str, mod: nn.Module) -> str:
    gm.add_submodule(name, mod)
    rec.modules.append(name)
    return name


def _conv1x1(weight: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])
    conv.requires_grad_(False)
    return conv


def _split(gm: fx.GraphModule, node: fx.Node, rec: AppliedEdit) -> fx.Node:
    """Keep `node`'s name but make room for ``node = old(node) + something``.

    Returns the node computing the old value (inserted just before `node`); the caller
    sets `node` to the sum with `_finish_split`. A placeholder cannot be duplicated: its
    users are rewired to the new sum instead (reading the input itself stays unedited).
    """
    if node.op == "placeholder":
        return node
    graph = gm.graph
    with graph.inserting_before(node):
        old = graph.create_node(
            node.op, node.target, node.args, node.kwargs, name=f"{node.name}_unedited"
        )
    old.meta = dict(node.meta)
    rec.nodes.append(old)
    return old


def _finish_split(
    gm: fx.GraphModule, node: fx.Node, old: fx.Node, extra: fx.Node, rec: AppliedEdit
) -> None:
    if node.op == "placeholder":
        with gm.graph.inserting_after(extra):
            total = gm.graph.call_function(operator.add, (node, extra))
        rec.nodes.append(total)
        node.replace_all_uses_with(
            total, delete_user_cb=lambda u: u not in rec.nodes and u is not total
        )
        rec.replaced.append((total, node))
        return
    rec.rewired.append((node, node.op, node.target, node.args, node.kwargs))
    node.op = "call_function"
    node.target = operator.add
    node.args = (old, extra)
    node.kwargs = {}


def _undo(gm: fx.GraphModule, rec: AppliedEdit) -> None:
    for new, original in reversed(rec.replaced):
        new.replace_all_uses_with(original)
    for node, op, target, args, kwargs in reversed(rec.rewired):
        node.op, node.target = op, target
        node.args, node.kwargs = args, kwargs
    for n in reversed(rec.nodes):
        gm.graph.erase_node(n)
    for name in rec.modules:
        gm.delete_submodule(name)
    with torch.no_grad():
        for p, saved in rec.params:
            p.copy_(saved)


# ---- the three kinds ----------------------------------------------------------------


def _members(bound: Any, ref: str) -> list[Any]:
    return list(bound.members(ref))


def _ablate(gm: fx.GraphModule, adapter: Any, bound: Any, target: str) -> list[AppliedEdit]:
    out = []
    members = _members(bound, target)
    for layer in sorted({f.layer for f in members}):
        mine = [f for f in members if f.layer == layer]
        name = adapter.node(layer)
        node = _fx_nodes(gm)[name]
        chans, u = _basis(mine)
        n_ch = adapter.graph.channels(name)
        rec = AppliedEdit(ABLATION, "", touched={name})
        proj_w = torch.zeros(u.shape[1], n_ch)
        proj_w[:, chans] = u.T
        back_w = torch.zeros(n_ch, u.shape[1])
        back_w[chans] = -u
        stem = _fresh(gm, "circuitdsl_ablate")
        old = _split(gm, node, rec)
        p_name = _module(gm, rec, f"{stem}_project", _conv1x1(proj_w))
        b_name = _module(gm, rec, f"{stem}_back", _conv1x1(back_w))
        where = (
            gm.graph.inserting_before(node)
            if node.op != "placeholder"
            else gm.graph.inserting_after(node)
        )
        with where:
            proj = gm.graph.call_module(p_name, (old,))
        with gm.graph.inserting_after(proj):
            back = gm.graph.call_module(b_name, (proj,))
        rec.nodes += [proj, back]
        _finish_split(gm, node, old, back, rec)
        onehot = all(len(f.channels) == 1 for f in mine)
        what = (
            f"{_ranges(chans)} set to 0"
            if onehot
            else f"{u.shape[1]} direction(s) over {_ranges(chans)} projected out"
        )
        rec.note = f"[{ABLATION}] {layer}: {what}"
        out.append(rec)
    return out


def _scales(graph: Any, op_kind_nodes: list[str], n: int) -> torch.Tensor:
    s = torch.ones(n)
    for name in op_kind_nodes:
        op = graph.nodes[name].op
        if op.kind == "scale" and op.scale is not None:
            s = s * op.scale.float()
    return s


def direct_conv(graph: Any, src: str, dst: str) -> tuple[str, torch.Tensor, torch.Tensor] | None:
    """The one convolution joining fx nodes `src` and `dst`, if there is one.

    Returns (conv node, per-output-channel scale between conv and `dst`, per-input
    scale between `src` and conv), or None when the layers are not joined by exactly
    one ungrouped convolution through channel-wise operations.
    """
    n, after = dst, []
    while True:
        if n == src:
            return None
        info = graph.nodes[n]
        if info.op.kind == "conv":
            break
        if info.op.kind not in _CHANNELWISE or len(info.op.inputs) != 1:
            return None
        after.append(n)
        n = info.op.inputs[0]
    conv = n
    op = graph.nodes[conv].op
    if op.groups != 1 or len(op.inputs) != 1 or op.weight is None:
        return None
    m, before = op.inputs[0], []
    while m != src:
        info = graph.nodes[m]
        if info.op.kind not in _CHANNELWISE or len(info.op.inputs) != 1:
            return None
        before.append(m)
        m = info.op.inputs[0]
    c_out, c_in = int(op.weight.shape[0]), int(op.weight.shape[1])
    return conv, _scales(graph, after, c_out), _scales(graph, before, c_in)


def _conv_module(gm: fx.GraphModule, node_name: str) -> nn.Conv2d | None:
    node = _fx_nodes(gm).get(node_name)
    if node is None or node.op != "call_module":
        return None
    mod = gm.get_submodule(str(node.target))
    if not isinstance(mod, nn.Conv2d):
        return None
    calls = sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == node.target)
    return mod if calls == 1 else None  # a shared module would change at every call


def _route(
    graph: Any, src: str, dst: str, chans: Sequence[int]
) -> dict[str, list[tuple[int, int]]]:
    """Where each target channel's pre-activation is: {node: [(dst channel, node channel)]}.

    Walks back from `dst` through elementwise nonlinearities (identity stand-ins) and
    concatenations, as long as the input depends on `src`; stops at anything else (a
    conv, BatchNorm, sum, pool). Channels of a branch that does not depend on `src` stay
    at the concatenation itself.
    """
    out: dict[str, list[tuple[int, int]]] = {}

    def feeds(n: str) -> bool:
        return n != src and src in graph.ancestors(n)

    def walk(n: str, pairs: list[tuple[int, int]]) -> None:
        op = graph.nodes[n].op
        if op.kind == "identity" and len(op.inputs) == 1 and feeds(op.inputs[0]):
            walk(op.inputs[0], pairs)
            return
        if op.kind == "cat":
            start, here = 0, []
            for i in op.inputs:
                c = graph.channels(i)
                sub = [(t, ch - start) for t, ch in pairs if start <= ch < start + c]
                if sub and feeds(i):
                    walk(i, sub)
                else:
                    here += [(t, ch + start) for t, ch in sub]
                start += c
            if here:
                out.setdefault(n, []).extend(here)
            return
        out.setdefault(n, []).extend(pairs)

    walk(dst, [(c, c) for c in chans])
    return out


def _correction(
    gm: fx.GraphModule,
    graph: Any,
    src: str,
    pre: str,
    delta: torch.Tensor,
    src_chans: Sequence[int],
    pre_chans: Sequence[int],
    block: Block,
    rec: AppliedEdit,
) -> int:
    """Add ``conv(delta) * src`` to node `pre` (channels `pre_chans`); returns its tap count."""
    nz = delta.abs().sum(dim=(0, 1)) > 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    if rows.numel() == 0:
        return 0
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    delta = delta[:, :, r0:r1, c0:c1]
    used = (delta.abs().sum(dim=(0, 2, 3)) > 0).nonzero().flatten()
    delta = delta[:, used]
    src_used = [src_chans[int(k)] for k in used]
    kh, kw = delta.shape[2], delta.shape[3]
    (sh, sw), (oh, ow) = block.stride, (block.offset[0] + r0, block.offset[1] + c0)
    s_shape, p_shape = graph.nodes[src].shape, graph.nodes[pre].shape
    if s_shape is None or p_shape is None or len(s_shape) != 4 or len(p_shape) != 4:
        raise EditError(f"`{src}` -> `{pre}`: no spatial shapes to place a correction")
    top, left = -oh, -ow
    # Output row Y reads source rows sh*Y + oh + dy; pad (or crop) the far side so the
    # correction has exactly the pre-activation's size.
    bottom = sh * (p_shape[2] - 1) + kh - s_shape[2] - top
    right = sw * (p_shape[3] - 1) + kw - s_shape[3] - left
    c_src, c_pre = graph.channels(src), graph.channels(pre)
    sel_w = torch.zeros(len(src_used), c_src)
    sel_w[torch.arange(len(src_used)), torch.tensor(src_used, dtype=torch.long)] = 1.0
    scat_w = torch.zeros(c_pre, len(pre_chans))
    scat_w[torch.tensor(list(pre_chans), dtype=torch.long), torch.arange(len(pre_chans))] = 1.0
    corr = nn.Conv2d(len(src_used), len(pre_chans), (kh, kw), stride=(sh, sw), bias=False)
    with torch.no_grad():
        corr.weight.copy_(delta)
    corr.requires_grad_(False)
    stem = _fresh(gm, "circuitdsl_edit")
    nodes = _fx_nodes(gm)
    target, source = nodes[pre], nodes[src]
    old = _split(gm, target, rec)
    names = (
        _module(gm, rec, f"{stem}_select", _conv1x1(sel_w)),
        _module(gm, rec, f"{stem}_kernel", corr),
        _module(gm, rec, f"{stem}_scatter", _conv1x1(scat_w)),
    )
    g = gm.graph
    with g.inserting_before(target):
        x = g.call_module(names[0], (source,))
        rec.nodes.append(x)
        if (top, bottom, left, right) != (0, 0, 0, 0):
            x = g.call_function(F.pad, (x, (left, right, top, bottom)))
            rec.nodes.append(x)
        x = g.call_module(names[1], (x,))
        rec.nodes.append(x)
        x = g.call_module(names[2], (x,))
        rec.nodes.append(x)
    _finish_split(gm, target, old, x, rec)
    return int((delta != 0).sum())


def _edge_edit(
    gm: fx.GraphModule,
    adapter: Any,
    graph: Any,
    edit: Edit,
    ls: str,
    ld: str,
    src_members: list[Any],
    dst_members: list[Any],
) -> AppliedEdit:
    kind = edit.kind
    factor = 0.0
    if kind != "remove":
        if edit.factor is None:
            raise EditError(f"a `{kind}` edit needs a factor")
        factor = float(edit.factor)
    part = edit.part
    verb = "removed" if kind == "remove" else f"scaled by {factor:g}"
    what = "" if part == "all" else f"{part} "
    s_node, t_node = adapter.node(ls), adapter.node(ld)
    if s_node == t_node or s_node not in graph.ancestors(t_node):
        raise EditError(f"layer `{ls}` does not feed layer `{ld}`: there are no weights to edit")
    s_chans, uc = _basis(src_members)
    d_chans, ud = _basis(dst_members)
    si = torch.tensor(s_chans, dtype=torch.long)
    di = torch.tensor(d_chans, dtype=torch.long)

    direct = direct_conv(graph, s_node, t_node)
    conv = _conv_module(gm, direct[0]) if direct is not None else None
    if direct is not None and conv is not None:
        conv_node, s_out, s_in = direct
        fold = s_out[di][:, None, None, None] * s_in[si][None, :, None, None]
        raw = conv.weight.detach()[di][:, si]  # a copy
        delta, mask, n, total = _edit_kernels(raw * fold, ud, uc, factor, part)
        onehot = bool(((ud != 0).sum(0) == 1).all() and ((uc != 0).sum(0) == 1).all())
        if onehot:
            # Exactly `w * factor` on the selected weights (no rounding through delta).
            sel = torch.einsum("or,rshw,is->oihw", ud.abs(), mask.float(), uc.abs()) > 0
            new = torch.where(sel, raw * factor, raw)
        elif bool((fold != 0).all()):
            new = raw + delta / fold
        else:
            new = None
        if new is not None:
            rec = AppliedEdit(DIRECT, "", weights_changed=n, touched={conv_node})
            rec.params.append((conv.weight, conv.weight.detach().clone()))
            with torch.no_grad():
                conv.weight[di[:, None], si[None, :]] = new
            rec.note = (
                f"[{DIRECT}] {verb} {n} {what}weights of `{conv_node}` ({ls} -> {ld},"
                f" {ud.shape[1]}x{uc.shape[1]} kernels, sum {total:.3g} -> {total * factor:.3g})"
            )
            return rec

    try:
        block = (
            adapter.weight_block(ls, ld)
            if graph is adapter.graph
            else expanded_weights(graph, s_node, t_node)
        )
    except NotLinearisable as exc:
        raise EditError(f"no linear path {ls} -> {ld} to correct: {exc}") from None
    w = block.weight[di][:, si]  # a copy: the adapter's cache is never written
    delta, _, n, total = _edit_kernels(w, ud, uc, factor, part)
    rec = AppliedEdit(CORRECTION, "", weights_changed=n)
    pos = {c: k for k, c in enumerate(d_chans)}
    taps, targets = 0, []
    for pre, pairs in _route(graph, s_node, t_node, d_chans).items():
        rows = [pos[t] for t, _ in pairs]
        taps += _correction(
            gm, graph, s_node, pre, delta[rows], s_chans, [p for _, p in pairs], block, rec
        )
        if any(bool(delta[r].any()) for r in rows):
            targets.append(pre)
            rec.touched.add(pre)
    where = ", ".join(f"`{t}`" for t in targets) or "nothing (the change is zero)"
    rec.note = (
        f"[{CORRECTION}] {verb} {n} {what}weights of the linearised map {ls} -> {ld}"
        f" ({ud.shape[1]}x{uc.shape[1]} kernels, {block.kernel_size[0]}x{block.kernel_size[1]}"
        f" window, stride {block.stride[0]}, sum {total:.3g} -> {total * factor:.3g});"
        f" correction added to {where}"
    )
    return rec


def _linearisation(adapter: Any, gm: fx.GraphModule) -> Any:
    """A fresh `TracedGraph` of the edited module, same node names (no retrace)."""
    from circuitdsl.models.traced import TracedGraph

    shape = None
    for info in adapter.graph.nodes.values():
        if info.op.kind == "input" and info.shape is not None:
            shape = info.shape
            break
    if shape is None:
        raise EditError("the model's input shape is unknown; edits cannot be composed")
    return TracedGraph(gm, example_input=torch.zeros(1, *shape[1:]), retrace=False, fold_bn=False)


def apply_edits(
    gm: fx.GraphModule, adapter: Any, bound: Any, edits: Sequence[Edit | Mapping[str, Any]]
) -> EditedModel:
    """Apply `edits` (the IR's `Edit`s, or their JSON dicts), in order, to `gm` (a copy
    of the adapter's)."""
    out = EditedModel(gm)
    graph = adapter.graph  # the linearisation the next edit is computed on
    touched: set[str] = set()  # nodes changed since `graph` was built
    for e in (e if isinstance(e, Edit) else Edit.from_dict(e) for e in edits):
        if e.kind == "ablate":
            recs = _ablate(gm, adapter, bound, str(e.target))
        else:
            if e.edge is None:
                raise EditError(f"a `{e.kind}` edit names no connection")
            src_members, dst_members = _members(bound, e.edge[0]), _members(bound, e.edge[1])
            recs = []
            for ls, ld in sorted({(s.layer, d.layer) for s in src_members for d in dst_members}):
                path = set(adapter.graph.path_nodes(adapter.node(ls), adapter.node(ld)))
                if touched & path:
                    # An earlier edit changed this path: compose with it, not with the original.
                    graph, touched = _linearisation(adapter, gm), set()
                src_here = [m for m in src_members if m.layer == ls]
                dst_here = [m for m in dst_members if m.layer == ld]
                recs.append(_edge_edit(gm, adapter, graph, e, ls, ld, src_here, dst_here))
                touched |= recs[-1].touched
        for r in recs:
            touched |= r.touched
            out.applied.append(r)
            out.notes.append(r.note)
            out.weights_changed += r.weights_changed
    gm.recompile()
    return out


def edited_copy(adapter: Any, bound: Any, edits: Sequence[Edit | Mapping[str, Any]]) -> EditedModel:
    """Apply `edits` to a deep copy of `adapter`'s graph module (see `apply_edits`)."""
    return apply_edits(copy.deepcopy(adapter.graph.gm), adapter, bound, edits)


def _ranges(chans: Sequence[int]) -> str:
    if len(chans) <= 8:
        return ("channel " if len(chans) == 1 else "channels ") + ",".join(str(c) for c in chans)
    return f"{len(chans)} channels"
