"""Responses as the next layer sees them: the read point, `responds`, `no echo`, `prefers`.

The nets are planted so each verdict is known in advance: a unit held below zero by its
bias (it never sends anything on), and a vertical-edge unit on an even-sized map whose
centre cells answer the "echo" curve with opposite signs (their pre-ReLU mean is
negative, yet the next layer receives the positive half).
"""

from __future__ import annotations

import pytest
import torch
from predict_models import planted_adapter, tuned_adapter
from torch import nn

import circuitdsl
from circuitdsl.check.api import check_spec
from circuitdsl.language.diagnostics import DiagnosticError
from circuitdsl.measure.responses import read_node
from circuitdsl.measure.stimuli import curve, line
from circuitdsl.models.base import TracedAdapter
from circuitdsl.report.model import ClaimResult, Report


class Silenced(nn.Module):
    """conv1:0 is a horizontal-line detector minus 10: below zero for every stimulus.

    Its pre-ReLU response to a horizontal line is far above its reference mean (z >> 2),
    but the ReLU after it sends 0 to the next layer whatever the stimulus.
    conv1:1 is the same detector without the bias: it does respond.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 2, 7, padding=3)
        self.relu1 = nn.ReLU()
        with torch.no_grad():
            img = line(0.0, length=7.0, width=1.0, size=7)[0, 0]
            self.conv1.weight[:] = (img - img.mean())[None, None] / 3
            self.conv1.bias[:] = torch.tensor([-10.0, 0.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu1(self.conv1(x))


class EvenEcho(nn.Module):
    """conv1:0 is a vertical-edge unit (right columns minus left) with bias -0.3 on a 16x16
    map, whose centre is the mean of the middle 2x2 cells.

    The curve turned to 0deg drives the two left cells to +2.6 and the two right ones to
    -4.8: the pre-ReLU mean is negative (no echo, read that way), but the ReLU passes the
    +2.6 halves on: the next layer sees half its peak response.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 1, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            k = torch.zeros(5, 5)
            k[:, 3:], k[:, :2] = 1.0, -1.0
            self.conv1.weight[:] = k / 3
            self.conv1.bias[:] = -0.3
            self.conv2.weight.fill_(1.0)
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu1(self.conv1(x)))


def adapter(module: nn.Module, size: int) -> TracedAdapter:
    return TracedAdapter(
        type(module).__name__, module.eval(), weights_path=None,
        example_input=torch.zeros(1, 3, size, size),
    )  # fmt: skip


def check(module: nn.Module, size: int, body: str) -> Report:
    return check_spec(circuitdsl.loads("circuit t\n" + body).circuit, adapter(module, size))


def result(rep: Report, name: str) -> ClaimResult:
    """The claim stated `as name` (its id also names the subject: `name.f`)."""
    (hit,) = [c for c in rep.claims if c.id == name or c.id.startswith(name + ".")]
    return hit


# ---- where a layer is read -----------------------------------------------------------


def test_a_conv_is_read_at_the_relu_that_follows_it() -> None:
    a = planted_adapter()
    assert read_node(a, "conv1")[0] == a.node("relu1")
    assert read_node(a, "conv1", pre=True)[0] == a.node("conv1")
    assert read_node(a, "relu1")[0] == a.node("relu1")  # already rectified
    assert read_node(a, "relu1", pre=True)[0] == a.node("conv1")  # the conv feeding it
    node, note = read_node(tuned_adapter(), "conv2")  # no nonlinearity after it
    assert node == tuned_adapter().node("conv2") and "as computed" in note


def test_inceptionv1_reads_the_relu_after_each_conv_and_concats_as_they_are() -> None:
    from circuitdsl.models.inceptionv1 import InceptionV1, layer_aliases

    a = TracedAdapter(
        "inceptionv1", InceptionV1().eval(), weights_path=None,
        example_input=torch.zeros(1, 3, 224, 224), aliases=layer_aliases(),
    )  # fmt: skip
    assert read_node(a, "mixed3b_5x5_pre_relu")[0] == a.node("mixed3b_5x5")
    assert read_node(a, "mixed3b_5x5", pre=True)[0] == a.node("mixed3b_5x5_pre_relu")
    node, note = read_node(a, "mixed3b")
    assert node == a.node("mixed3b") and "concatenation" in note
    with pytest.raises(Exception, match="pre-ReLU layer"):
        read_node(a, "mixed3b", pre=True)


# ---- responds ----------------------------------------------------------------------------


def test_a_unit_below_zero_never_responds() -> None:
    rep = check(
        Silenced(), 32,
        "feature dead = conv1:0\nfeature live = conv1:1\n"
        "expect dead pre responds to line(orientation = 0deg) as pre_dead\n"
        "expect dead responds to line(orientation = 0deg) as post_dead\n"
        "expect live responds to line(orientation = 0deg) as post_live\n",
    )  # fmt: skip
    pre, post, live = (result(rep, i) for i in ("pre_dead", "post_dead", "post_live"))
    # Read before the ReLU the unit is far above its reference (z alone would pass) ...
    assert pre.measured["z"] >= 2 and pre.measured["activation"] < -5
    # ... but a unit at -5 does not respond: the verdict needs a positive activation.
    assert pre.status == "fail" and "not positive" in pre.detail
    assert post.status == "fail" and post.measured["activation"] == 0
    assert live.status == "pass" and live.measured["activation"] > 0


@pytest.mark.parametrize("bias", [-10.0, -3.0, -1.0, -0.2, 0.0, 0.5])
@pytest.mark.parametrize("orientation", [0, 30, 90])
def test_responds_passes_only_with_a_positive_activation(bias: float, orientation: int) -> None:
    net = Silenced()
    with torch.no_grad():
        net.conv1.bias[0] = bias
    rep = check(
        net, 32,
        f"feature f = conv1:0\n"
        f"expect f pre responds to line(orientation = {orientation}deg) (z >= 0) as a\n"
        f"expect f responds to line(orientation = {orientation}deg) (z >= 0) as b\n",
    )  # fmt: skip
    for c in rep.claims:
        if c.status == "pass":
            assert c.measured["activation"] > 0, c.detail
        if c.measured["activation"] <= 0:
            assert c.status == "fail", c.detail


def test_vgg16_hed_silenced_unit_does_not_respond() -> None:
    """On the real VGG16 of HED (when `vgg16-hed` and its weights are installed).

    conv1_2 (`features.2`) unit 11 answers a default `angle()` at -27 before its ReLU,
    2.2 SDs above its reference mean (measured at 224 px when this test was written): a
    z-only `responds` passed it. It sends nothing on, so it must fail either way.
    """
    from circuitdsl.models.registry import load_model

    try:
        vgg = load_model("vgg16-hed")
    except DiagnosticError as exc:
        pytest.skip(f"vgg16-hed is not available here: {exc.diagnostics[0].message}")
    spec = (
        "circuit v\nfeature u = features.2:11\n"
        "expect u pre responds to angle() as pre_u\nexpect u responds to angle() as post_u\n"
    )
    rep = check_spec(circuitdsl.loads(spec).circuit, vgg)  # ~45 s on one CPU core at 224 px
    pre_u, post_u = result(rep, "pre_u"), result(rep, "post_u")
    assert pre_u.measured["activation"] < 0 and pre_u.status == "fail"
    assert post_u.measured["activation"] == 0 and post_u.status == "fail"
    assert "features.3" in post_u.detail  # read at the ReLU after conv1_2


def test_a_silent_unit_prefers_nothing() -> None:
    # read after its ReLU the unit is 0 at every orientation: the argmax of a flat sweep
    # is the first value, 0deg, which would pass a claim of 0deg
    rep = check(
        Silenced(), 32,
        "feature dead = conv1:0\nfeature live = conv1:1\n"
        "expect dead prefers orientation 0deg ± 10deg on line() as dead\n"
        "expect live prefers orientation 0deg ± 10deg on line() as live\n",
    )  # fmt: skip
    dead, live = result(rep, "dead"), result(rep, "live")
    assert dead.status == "fail" and dead.measured["peak"] == 0
    assert "prefers none" in dead.detail
    assert live.status == "pass" and live.measured["error"] <= 5


# ---- no echo -----------------------------------------------------------------------------


def test_no_echo_sees_what_the_relu_passes_on() -> None:
    net = EvenEcho()
    rep = check(
        net, 16,
        "feature f = conv1:0\n"
        "expect f pre no echo on curve(orientation = 0deg) as pre\n"
        "expect f no echo on curve(orientation = 0deg) as post\n",
    )  # fmt: skip
    pre, post = result(rep, "pre"), result(rep, "post")
    # What the next layer receives from the echo curve, computed here directly.
    with torch.no_grad():
        seen = torch.relu(net.conv1(curve(0.0, size=16)))[0, 0, 7:9, 7:9].mean()
    assert seen > 1.0
    # The pre-ReLU reading averages +2.6 and -4.8 cells into a negative echo: a false pass.
    assert pre.status == "pass" and pre.measured["echo"] < 0
    # Read after the ReLU the echo is there, and the claim fails as it should.
    assert post.status == "fail"
    assert post.measured["echo"] == pytest.approx(float(seen), rel=1e-4)
    assert post.measured["echo_ratio"] > 0.3
    # Both numbers are reported: the value after and the value before the ReLU.
    assert post.measured["echo_pre"] == pytest.approx(pre.measured["echo"], rel=1e-4)


def test_no_echo_tells_suppression_from_a_rectified_zero() -> None:
    # opp = line 0deg minus line 90deg, read where no ReLU follows (the model output)
    rep = check_spec(
        circuitdsl.loads(
            "circuit s\nfeature opp = conv2:0\nfamily det in conv1 { 0, 2 }\n"
            "expect opp no echo on line(orientation = 90deg) as supp\n"
            "expect det[2] no echo on line(orientation = 0deg) as zero\n"
        ).circuit,
        tuned_adapter(),
    )
    supp, zero = result(rep, "supp"), result(rep, "zero")
    assert supp.status == "pass" and supp.measured["echo_pre_ratio"] < -0.1
    assert "suppressed" in supp.detail
    # det[2] (90deg line) after its ReLU: 0 to the horizontal line, reported as such
    assert zero.measured["echo"] == 0 and zero.measured["echo_pre"] <= 0
    assert "after the nonlinearity (relu1)" in zero.detail


# ---- prefers and the selector that assigned its value -------------------------------------

SELECTED = """circuit chosen
family lines(orientation: angle) = top 4 of conv1 by line(length = 9) over orientation
"""


def selected(body: str) -> Report:
    from circuitdsl.language.loader import program_from_text

    text = SELECTED + body
    return check_spec(
        circuitdsl.loads(text).circuit, tuned_adapter(), program=program_from_text(text, "s.circ")
    )


def test_prefers_on_the_selectors_stimulus_is_flagged_circular_and_sweeps_off_grid() -> None:
    rep = selected(
        "expect lines prefers orientation self.orientation ± 10deg on line(length = 9)\n"
        "expect lines prefers orientation self.orientation ± 10deg on curve(radius = 20)\n"
    )
    circular = [c for c in rep.claims if "on line" in c.text]
    other = [c for c in rep.claims if "on curve" in c.text]
    assert len(circular) == 4 and len(other) == 4
    for c in circular:
        assert c.measured["circular"] == 1.0 and "circular" in c.detail
        # the selector swept 0, 5, 10, ... (36 steps of 180deg): the claim used 2.5, 7.5, ...
        assert (c.measured["preferred"] - 2.5) % 5 == pytest.approx(0, abs=1e-6)
        assert c.status == "pass"  # the planted detectors still prefer their orientation
    assert all(c.measured["circular"] == 0.0 for c in other)


# ---- selectors: selectivity against controls, response size, tiling, coverage -------------


class Templates(nn.Module):
    """conv1 channel i is a zero-mean template of image i (15x15, luminance), times gain i."""

    def __init__(self, images: list[torch.Tensor], gains: list[float]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, len(images), 15, padding=7, bias=False)
        self.relu1 = nn.ReLU()
        with torch.no_grad():
            for i, (img, g) in enumerate(zip(images, gains, strict=True)):
                t = img[0].mean(0)
                self.conv1.weight[i] = g * (t - t.mean())[None] / 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu1(self.conv1(x))


def choose_in(net: nn.Module, selector: str):  # type: ignore[no-untyped-def]
    from circuitdsl.language.syntax.parser import parse
    from circuitdsl.measure.select import choose

    (decl,) = parse(f"family f = {selector}\n").statements
    return choose(adapter(net, 32), decl.select)


def test_a_corner_detector_is_not_chosen_as_a_curve() -> None:
    from circuitdsl.measure.stimuli import angle

    # channel 0: a 90deg corner, strong (8x); channel 1: the curve itself, weak (1x)
    net = Templates([angle(90.0, length=6.28, size=15), curve(90.0, size=15)], [8.0, 1.0])
    with torch.no_grad():
        r = net(curve(90.0, size=32))[0, :, 15:17, 15:17].mean((1, 2))
    assert r[0] > r[1]  # the corner unit answers the curve more: response alone picks it
    sel = choose_in(net, "top 1 of conv1 by curve(orientation = 90deg)")
    assert sel.channels == (1,)
    assert sel.selectivity[0] > 0 and sel.response[0] < 1  # selective, not the largest


def test_score_needs_response_size_as_well_as_selectivity() -> None:
    # two copies of one curve template, the second ten times weaker: equally selective
    net = Templates([curve(90.0, size=15), curve(90.0, size=15)], [0.1, 1.0])
    sel = choose_in(net, "top 2 of conv1 by curve(orientation = 90deg)")
    assert sel.channels == (1, 0)
    assert sel.selectivity[0] == pytest.approx(sel.selectivity[1], rel=1e-4)
    assert sel.response == pytest.approx((1.0, 0.1), rel=1e-3)


def test_high_low_is_chosen_against_uniform_gratings_averaged_over_phase() -> None:
    from circuitdsl.measure.stimuli import high_low

    fine = high_low(0.0, frequency=0.2, ratio=1.0, size=15)  # a uniform fine grating
    net = Templates([fine, high_low(0.0, size=15)], [3.0, 1.0])
    sel = choose_in(net, "top 1 of conv1 by high_low()")
    assert sel.channels == (1,), sel.text()


def test_over_p_tiles_the_parameter_one_unit_per_bin() -> None:
    # three strong vertical-line units and one weak horizontal one: ranking by score alone
    # would take two vertical units for `top 2`; tiling takes one per 90deg bin.
    imgs = [line(o, length=12.0, width=1.5, size=15) for o in (90.0, 90.0, 85.0, 0.0)]
    net = Templates(imgs, [1.0, 0.9, 0.95, 0.4])
    sel = choose_in(net, "top 2 of conv1 by line(length = 12) over orientation")
    assert sel.bins == ((135.0, 45.0), (45.0, 135.0))  # centred on 0 and 90deg
    assert sel.channels == (3, 0)  # the horizontal unit, then the best vertical one
    assert sel.values is not None and sel.values[0] == pytest.approx(0.0, abs=5)
    assert sel.empty_bins == ()
    four = choose_in(tuned_net(), "top 4 of conv1 by line(length = 9) over orientation")
    assert four.channels == (0, 1, 2, 3)  # the planted 0, 45, 90, 135deg detectors
    assert [b[0] for b in four.bins or ()] == [157.5, 22.5, 67.5, 112.5]


def tuned_net() -> nn.Module:
    from predict_models import Tuned

    return Tuned()


def test_empty_bins_are_reported_and_the_family_is_smaller() -> None:
    imgs = [line(o, length=12.0, width=1.5, size=15) for o in (90.0, 88.0, 92.0, 90.0)]
    net = Templates(imgs, [1.0, 0.9, 0.8, 0.7])
    sel = choose_in(net, "top 4 of conv1 by line(length = 12) over orientation")
    assert sel.channels == (0,) and sel.bins == ((67.5, 112.5),)
    assert len(sel.empty_bins) == 3 and "empty bins" in sel.text()
    assert sel.to_dicts()[0]["rank"] == 3  # the third bin (centred on 90deg): tables align by bin


def test_coverage_claim() -> None:
    rep = selected(
        "expect lines covers orientation in 45deg bins as four\n"
        "expect lines covers orientation in 30deg bins on line(length = 9) as six\n"
        "family declared(orientation: angle) in conv1 { 0: 0deg, 1: 45deg }\n"
        "expect declared covers orientation in 45deg bins as nostim\n"
        "expect declared covers orientation in 90deg bins on line() as two\n"
    )
    four, six, nostim, two = (result(rep, n) for n in ("four", "six", "nostim", "two"))
    assert four.status == "pass" and four.measured == {"fraction": 1.0, "covered": 4, "bins": 4}
    assert six.status == "fail" and six.measured["bins"] == 6 and six.measured["covered"] == 4
    assert nostim.status == "error" and "say which stimulus" in nostim.detail
    # 0deg and 45deg: 45 rounds into the 90deg bin, so both bins of 180deg are covered
    assert two.status == "pass" and two.measured["covered"] == 2


def test_coverage_names_a_family() -> None:
    with pytest.raises(DiagnosticError) as info:
        circuitdsl.loads(
            "circuit c\nfeature f = conv1:0\nexpect f covers orientation in 45deg bins\n"
        )
    assert info.value.diagnostics[0].code == "E108"
    assert "not a family" in info.value.diagnostics[0].message


def test_selection_scores_reach_the_json_as_numbers() -> None:
    import json

    data = json.loads(selected("expect lines covers orientation in 45deg bins\n").to_json())
    entries = data["selections"]
    assert [e["unit"] for e in entries] == ["conv1:0", "conv1:1", "conv1:2", "conv1:3"]
    for e in entries:
        assert e["name"] == "lines"
        for key in ("score", "selectivity", "response", "value"):
            assert isinstance(e[key], float)
        assert isinstance(e["bin"], list) and all(isinstance(x, float) for x in e["bin"])
        assert e["score"] == pytest.approx(e["selectivity"] * e["response"])
    again = Report.from_json(json.dumps(data))
    assert again.selection_data[0]["unit"] == "conv1:0"


class Branches(nn.Module):
    """Two rectified branches concatenated, like an Inception block: `cat` = [a (2), b (3)]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a_conv, self.a = nn.Conv2d(3, 2, 5, padding=2), nn.ReLU()
        self.b_conv, self.b = nn.Conv2d(3, 3, 5, padding=2), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(self.a_conv(x)), self.b(self.b_conv(x))], 1)


def test_a_concatenation_is_read_before_relu_in_each_channels_branch() -> None:
    a = adapter(Branches(), 16)
    assert a.branch_of("cat", 3) == ("b", 1)  # channel 3 is branch b's channel 1
    spec = (
        "circuit c\nfeature cat = cat:3\nfeature own = b_conv:1\n"
        "expect cat pre no echo on curve(orientation = 0deg) as cat_pre\n"
        "expect own pre no echo on curve(orientation = 0deg) as own_pre\n"
        "expect cat no echo on curve(orientation = 0deg) as cat_post\n"
        "expect own no echo on curve(orientation = 0deg) as own_post\n"
    )
    rep = check_spec(circuitdsl.loads(spec).circuit, a)
    cat, own, post, own_post = (
        result(rep, n) for n in ("cat_pre", "own_pre", "cat_post", "own_post")
    )
    assert cat.status != "error", cat.detail
    assert cat.measured["echo"] == pytest.approx(own.measured["echo"], rel=1e-5)
    assert post.measured["echo_pre"] == pytest.approx(own.measured["echo"], rel=1e-5)
    assert post.measured["echo"] == pytest.approx(own_post.measured["echo"], rel=1e-5)
    assert "each channel's branch" in cat.detail
