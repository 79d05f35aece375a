"""The one execution path: receptive fields, the canvas, the centre unit, no repeated work,
the disk cache, memory-budget batches, bf16, progress and threads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

import circuitdsl
from circuitdsl.measure.tuning import orientation_tuning
from circuitdsl.models.geometry import canvas, describe, full_canvas
from circuitdsl.models.probe import MAX_BATCH, Runner, runner_for, using
from circuitdsl.models.progress import Progress
from circuitdsl.models.registry import load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vgg16():  # type: ignore[no-untyped-def]
    from circuitdsl.models.torchvision_models import build

    torch.manual_seed(0)
    return build("vgg16", None, allow_random=True)


@pytest.fixture(scope="module")
def resnet18():  # type: ignore[no-untyped-def]
    from circuitdsl.models.torchvision_models import build

    torch.manual_seed(0)
    return build("resnet18", None, allow_random=True)


def test_vgg16_receptive_fields(vgg16) -> None:  # type: ignore[no-untyped-def]
    g = vgg16.graph
    assert describe(g, vgg16.node("features.0")) == (3, 1, 1)
    assert describe(g, vgg16.node("features.4")) == (6, 2, 2)  # the first pool
    # conv4_2: 76 px (issue 18), stride 8; unit 0's field starts 34 px before the image
    assert describe(g, vgg16.node("features.19")) == (76, 8, 34)
    assert describe(g, vgg16.node("classifier.0")) is None  # behind the flatten: global
    # the 28x28 map's centre is units 13 and 14 (pixels 107.5, 115.5): the image centre
    full = full_canvas(g, vgg16.node("features.19"))
    assert full.anchor == (0.0, 0.0) and full.span == (2, 2)
    # the smallest canvas holding both fields (units 5 and 6 read pixels 6..89)
    small = canvas(g, vgg16.node("features.19"))
    assert small.size == (90, 90) and small.anchor == (3.0, 3.0) and small.span == (2, 2)
    # an odd map (features.30 is 7x7) has one centre unit
    assert full_canvas(g, vgg16.node("features.30")).span == (1, 1)


@pytest.mark.parametrize("layer", ["features.19", "features.20"])
def test_rf_canvas_equals_full_size_vgg16(vgg16, layer: str) -> None:  # type: ignore[no-untyped-def]
    args = dict(radius=14.0, span=120.0, width=2.0, rectify=False)
    with using(canvas="full"):
        full = orientation_tuning(vgg16, layer, "curve", [0.0, 100.0, 250.0], **args)
    small = orientation_tuning(vgg16, layer, "curve", [0.0, 100.0, 250.0], **args)
    scale = float(full.responses.abs().max())
    assert scale > 0
    assert torch.allclose(small.responses, full.responses, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("layer", ["layer1", "layer2.0", "layer2"])
def test_rf_canvas_equals_full_size_resnet(resnet18, layer: str) -> None:  # type: ignore[no-untyped-def]
    # strided convs, a max-pool with padding, residual additions and BatchNorm folded in
    node = resnet18.node(layer)
    assert canvas(resnet18.graph, node).size[0] < 224
    args = dict(length=20.0, width=2.0, rectify=False, x=3.0, y=-2.0)
    with using(canvas="full"):
        full = orientation_tuning(resnet18, layer, "line", [0.0, 60.0], **args)
    small = orientation_tuning(resnet18, layer, "line", [0.0, 60.0], **args)
    scale = float(full.responses.abs().max())
    assert torch.allclose(small.responses, full.responses, rtol=1e-4, atol=1e-5 * scale)


def _measured(report):  # type: ignore[no-untyped-def]
    return {c.id: (c.status, c.measured) for c in report.claims}


def test_rf_canvas_equals_full_size_check() -> None:
    spec = circuitdsl.load(ROOT / "specs/curvenet/predictions.circ")
    adapter = load_model("curvenet")
    small = _measured(spec.check(adapter, progress=False))
    with using(canvas="full"):
        full = _measured(spec.check(load_model("curvenet"), progress=False))
    assert small.keys() == full.keys()
    for cid, (status, stats) in small.items():
        assert status == full[cid][0], cid
        for k, v in stats.items():
            assert v == pytest.approx(full[cid][1][k], rel=1e-4, abs=1e-5), (cid, k)


def test_tune_and_check_read_the_same_centre_unit() -> None:
    """`circ tune` and `circ check` once differed on even-sized maps (tune read the unit
    below right of the centre, check the mean of the central 2x2); now both read the one
    centre (the 2x2 mean, stimuli at the image centre)."""
    adapter = load_model("curvenet")
    node = adapter.node("conv2")
    assert adapter.graph.nodes[node].shape[-1] % 2 == 0  # an even-sized map
    assert full_canvas(adapter.graph, node).span == (2, 2)  # four units averaged
    # check reads conv2 after its ReLU (relu2): tune the same node
    tuned = orientation_tuning(adapter, "relu2", "curve", [300.0, 120.0], radius=8.0)
    src = "circuit t\nmodel curvenet\nfeature f = conv2:9\n" + "".join(
        f"expect f responds to curve(orientation = {o}deg, radius = 8) as r{o}\n"
        for o in (300, 120)
    )
    rep = circuitdsl.loads(src).check(adapter, progress=False)
    acts = [c.measured["activation"] for c in rep.claims]
    assert acts[0] > 0  # the unit answers its preferred curve: the comparison means something
    assert acts == pytest.approx(tuned.responses[9].tolist(), rel=1e-5, abs=1e-6)


def test_each_image_is_pushed_once_across_selectors_and_claims(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rendered: list[tuple[int, str, str]] = []  # (model, canvas, stimulus key)
    pushed: list[int] = []
    orig_responses, orig_centres = Runner.responses, Runner.centres

    def responses(self, cv, nodes, keys, render, *, salt=""):  # type: ignore[no-untyped-def]
        def rec(ks):  # type: ignore[no-untyped-def]
            rendered.extend((id(self.source_gm), cv.key(), repr(k)) for k in ks)
            return render(ks)

        return orig_responses(self, cv, nodes, keys, rec, salt=salt)

    def centres(self, images, nodes, canvas=None):  # type: ignore[no-untyped-def]
        pushed.append(len(images))
        return orig_centres(self, images, nodes, canvas)

    monkeypatch.setattr(Runner, "responses", responses)
    monkeypatch.setattr(Runner, "centres", centres)
    spec = circuitdsl.load(ROOT / "specs/curvenet/universal.circ")
    rep = spec.check(load_model("curvenet"), progress=False)
    assert rep.summary["error"] == 0 and rep.selections
    # The selector's sweep (radius 8, 10 deg steps) is part of the `no echo` claim's
    # sweep (default radius 8, 5 deg steps): those images, and the reference set, are
    # drawn and pushed once for the model; edited copies push only what their claims read.
    assert len(rendered) == sum(pushed)
    assert len(set(rendered)) == len(rendered)


def test_disk_cache_makes_a_rerun_push_nothing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CIRCUITDSL_CACHE", str(tmp_path))
    pushed: list[int] = []
    orig = Runner.centres

    def centres(self, images, nodes, canvas=None):  # type: ignore[no-untyped-def]
        pushed.append(len(images))
        return orig(self, images, nodes, canvas)

    monkeypatch.setattr(Runner, "centres", centres)
    spec = circuitdsl.load(ROOT / "specs/curvenet/predictions.circ")
    first = _measured(spec.check(load_model("curvenet"), progress=False, cache=True))
    n_first = sum(pushed)
    assert n_first > 0
    files = list((tmp_path / "activations").rglob("*.safetensors"))
    assert files and not list(tmp_path.rglob("*.tmp"))  # written whole, then renamed
    pushed.clear()
    again = _measured(spec.check(load_model("curvenet"), progress=False, cache=True))
    assert again == first
    assert sum(pushed) == 0  # a fresh model object, same content: everything from disk
    # a damaged file is recomputed, not trusted
    for f in files:
        f.write_bytes(b"garbage")
    pushed.clear()
    assert _measured(spec.check(load_model("curvenet"), progress=False, cache=True)) == first
    assert sum(pushed) == n_first
    # --no-cache: nothing read
    pushed.clear()
    spec.check(load_model("curvenet"), progress=False, cache=False)
    assert sum(pushed) > 0


def test_batches_follow_the_memory_budget() -> None:
    adapter = load_model("curvenet")
    node = adapter.node("conv3")
    small = runner_for(adapter, max_memory=1)
    assert small.batch_size([node], (32, 32)) == 1
    big = runner_for(adapter, max_memory=1 << 40)
    assert big.batch_size([node], (32, 32)) == MAX_BATCH
    one = runner_for(adapter, max_memory=400_000).batch_size([node], (32, 32))
    two = runner_for(adapter, max_memory=800_000).batch_size([node], (32, 32))
    assert 1 <= one < two <= MAX_BATCH and abs(two - 2 * one) <= 1  # proportional
    images = torch.rand(20, 3, 32, 32)
    a = small.centres(images, [node])[node]
    b = big.centres(images, [node])[node]
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-4)  # batched convs round differently


def test_bf16_statistics_stay_close_to_fp32() -> None:
    """bf16 autocast (CPU here; CUDA on a GPU) keeps every verdict of the curvenet
    predictions, every continuous statistic within 5 %, and every argmax within one
    sweep step."""
    spec = circuitdsl.load(ROOT / "specs/curvenet/predictions.circ")
    fp32 = _measured(spec.check(load_model("curvenet"), progress=False, precision="fp32"))
    bf16 = _measured(spec.check(load_model("curvenet"), progress=False, precision="bf16"))
    for cid, (status, stats) in fp32.items():
        assert bf16[cid][0] == status, cid
        for k, v in stats.items():
            if not (isinstance(v, float) and v == v):
                continue
            if k in ("preferred", "error", "echo_at"):
                # an argmax over a 5 deg sweep: bf16 rounding may move it one step
                assert abs(bf16[cid][1][k] - v) <= 5.0 + 1e-6, (cid, k)
            else:
                assert bf16[cid][1][k] == pytest.approx(v, rel=0.05, abs=0.05), (cid, k)


def test_progress_reports_every_phase() -> None:
    out = io.StringIO()
    spec = circuitdsl.load(ROOT / "specs/curvenet/universal.circ")
    spec.check("curvenet", progress=Progress(enabled=True, stream=out))
    text = out.getvalue()
    assert "loading curvenet" in text
    assert "selecting curve = top 3 of conv3" in text
    assert "conv3" in text and " at " in text  # a layer's sweep, with its canvas
    assert "claims" in text
    quiet = io.StringIO()
    spec.check("curvenet", progress=Progress(enabled=None, stream=quiet))  # not a TTY
    assert quiet.getvalue() == ""


def test_default_threads(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from circuitdsl.models import threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("CIRCUITDSL_THREADS", raising=False)
        assert threads.default_threads() == min(threads.cores(), 4)
        monkeypatch.setenv("CIRCUITDSL_THREADS", "1")
        assert threads.default_threads() == 1 == torch.get_num_threads()
        monkeypatch.delenv("CIRCUITDSL_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert threads.default_threads() == 1  # the user's choice is kept
    finally:
        torch.set_num_threads(before)


def test_vgg16_hed_builds_torchvisions_features_without_torchvision() -> None:
    torchvision = pytest.importorskip("torchvision")
    from circuitdsl.models.vgg16_hed import vgg16_features

    assert str(vgg16_features()) == str(torchvision.models.vgg16(weights=None).features)


def test_rf_canvas_equals_full_size_inceptionv1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # TensorFlow "SAME" pads (asymmetric, -inf for pools), LRN, concatenated branches
    from circuitdsl.models.inceptionv1 import InceptionV1

    torch.manual_seed(0)
    model = InceptionV1()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    torch.save(model.state_dict(), tmp_path / "inception5h.pth")
    adapter = load_model("inceptionv1", tmp_path / "inception5h.pth")
    for layer in ("conv2d2", "mixed3b", "mixed4a"):
        node = adapter.node(layer)
        assert canvas(adapter.graph, node).size[0] < 224, layer
        args = dict(radius=10.0, width=2.0, rectify=False, y=1.0)
        with using(canvas="full"):
            full = orientation_tuning(adapter, layer, "curve", [30.0, 210.0], **args)
        small = orientation_tuning(adapter, layer, "curve", [30.0, 210.0], **args)
        scale = float(full.responses.abs().max())
        assert scale > 0
        assert torch.allclose(small.responses, full.responses, rtol=1e-4, atol=1e-5 * scale), layer
