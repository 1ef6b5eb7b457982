"""Evaluation protocols: determinism, compositing, metric region, oracles, clamping, conventions, baselines."""
import cv2
import numpy as np
import pytest

from bgmatting.data.io import write_image
from bgmatting.data.synthetic import make_backgrounds, make_comp1k, make_photomatte85
from bgmatting.engine import evaluator
from bgmatting.errors import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_data")
    make_photomatte85(root / "pm85", n=3, size=48, seed=0)
    make_backgrounds(root / "bg", n=3, size=40, seed=0)
    make_comp1k(root / "comp1k", n=2, size=40, seed=0, backgrounds_per_fg=1)
    return root


def _bench(data, **kwargs):
    kwargs.setdefault("resolution", 64)
    return evaluator.PhotoMatte85Benchmark(data / "pm85", data / "bg", **kwargs)


class LookupOracle:
    """Returns the ground truth of the sample whose source it is given, optionally blurred."""

    def __init__(self, samples, blur=0.0):
        self.truth = {samples[i].src.tobytes(): samples[i] for i in range(len(samples))}
        self.blur = blur
        self.calls = []

    def __call__(self, src, bgr=None, trimap=None):
        self.calls.append({"bgr": bgr, "trimap": trimap})
        sample = self.truth[src.tobytes()]
        pha = sample.pha if not self.blur else cv2.GaussianBlur(sample.pha, (0, 0), self.blur)
        fgr = None if sample.fgr is None else sample.fgr.astype(np.float32) / 255
        return {"pha": pha, "fgr": fgr}


def test_photomatte85_same_seed_same_images_and_numbers(data):
    first, second = _bench(data, seed=3), _bench(data, seed=3)
    for i in range(len(first)):
        a, b = first[i], second[i]
        for key in ("src", "bgr", "pha", "trimap", "fgr"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), key
    oracle = LookupOracle(first, blur=1.5)
    result_a = evaluator.evaluate(first, oracle, progress=False)
    result_b = evaluator.evaluate(second, oracle, progress=False)
    assert result_a.means == result_b.means and result_a.means["sad"] > 0
    assert not np.array_equal(_bench(data, seed=4)[0].src, first[0].src)


def test_photomatte85_image_depends_only_on_seed_and_index(data):
    bench = _bench(data, seed=1)
    late = bench[2].src
    assert np.array_equal(_bench(data, seed=1)[2].src, late)  # without generating items 0 and 1 first
    full = evaluator.evaluate(bench, LookupOracle(bench, blur=1.0), progress=False)
    head = evaluator.evaluate(bench, LookupOracle(bench, blur=1.0), progress=False, limit=2)
    assert head.rows == [{**row, "seconds": r2["seconds"]} for row, r2 in zip(full.rows[:2], head.rows)]


def test_photomatte85_sample_is_a_composite_at_the_resolution(data):
    sample = _bench(data, resolution=72)[0]
    assert sample.src.shape == sample.bgr.shape == sample.fgr.shape == (72, 72, 3)
    assert sample.pha.shape == sample.trimap.shape == (72, 72) and sample.pha.dtype == np.float32
    alpha = sample.pha[:, :, None]
    expected = sample.fgr / 255.0 * alpha + sample.bgr / 255.0 * (1 - alpha)
    assert np.abs(sample.src / 255.0 - expected).max() <= 2.5 / 255  # 8-bit rounding of src, fgr and pha
    assert 0 < (sample.trimap == 128).mean() < 1 and set(np.unique(sample.trimap)) <= {0, 128, 255}
    assert np.array_equal(sample.pha, np.round(sample.pha * 255) / 255)  # 8-bit GT


def test_protocols_composite_with_their_foreground_scale(data):
    # same seed: the paddle-port scale range (0.55–0.9) differs from the standard (0.3–1) → different images
    standard, port = _bench(data, seed=0)[1], _bench(data, seed=0, protocol="paddle-port")[1]
    assert not np.array_equal(standard.pha, port.pha)
    assert evaluator.PROTOCOLS["paddle-port"].fg_scale == (0.55, 0.9)
    assert evaluator.PROTOCOLS["standard"].fg_scale == (0.3, 1.0)


def test_trimap_from_gt_is_a_ten_pixel_diamond_around_a_point():
    # 10 dilations by the 3×3 cross (OpenCV's 3×3 ellipse) reach every pixel with |dx| + |dy| ≤ 10:
    # 2·10² + 2·10 + 1 = 221 pixels; the single opaque pixel erodes away, so none is foreground.
    pha8 = np.zeros((31, 31), np.uint8)
    pha8[15, 15] = 255
    trimap = evaluator.trimap_from_gt(pha8)
    assert (trimap == 128).sum() == 221 and (trimap == 255).sum() == 0
    assert trimap[15, 25] == 128 and trimap[16, 25] == 0
    block = np.zeros((40, 40), np.uint8)
    block[:, 20:] = 255
    trimap = evaluator.trimap_from_gt(block)
    assert np.array_equal(np.unique(trimap[0, :]), [0, 128, 255])
    assert (trimap[0] == 128).sum() == 20  # columns 10..29: 10 on each side of the edge


def test_perfect_oracle_scores_zero_and_blur_scores_more(data):
    bench = _bench(data)
    perfect = evaluator.evaluate(bench, LookupOracle(bench), progress=False)
    assert perfect.means == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "fgr_mse": 0.0}
    light = evaluator.evaluate(bench, LookupOracle(bench, blur=0.8), progress=False).means
    heavy = evaluator.evaluate(bench, LookupOracle(bench, blur=3.0), progress=False).means
    for key in ("sad", "mse", "grad"):
        assert 0 < light[key] < heavy[key], key


def test_model_gets_the_plate_and_not_the_trimap_for_photomatte85(data):
    bench = _bench(data)
    oracle = LookupOracle(bench)
    evaluator.evaluate(bench, oracle, progress=False)
    # the trimap is the metric region derived from the GT: the model must not see it
    assert all(call["trimap"] is None for call in oracle.calls)
    assert np.array_equal(oracle.calls[0]["bgr"], bench[0].bgr)


def test_plate_perturbations_change_the_plate_not_the_geometry(data):
    clean = _bench(data, seed=2)[0]
    background = clean.pha == 0
    assert np.array_equal(clean.src[background], clean.bgr[background])  # perfect plate
    for name in evaluator.PERTURBATIONS:
        perturbed = _bench(data, seed=2, perturb=(name,))[0]
        assert np.array_equal(perturbed.pha, clean.pha), name
        assert not np.array_equal(perturbed.src[background], perturbed.bgr[background]), name
    with pytest.raises(UserError, match="unknown --bgr-perturb blur"):
        _bench(data, perturb=("blur",))


def test_plate_imperfections_raise_the_difference_baseline_error(data):
    clean = evaluator.evaluate(_bench(data, seed=0), evaluator.DifferenceBaseline(0.02), progress=False)
    imperfect = evaluator.evaluate(_bench(data, seed=0, perturb=("misalign", "jitter")),
                               evaluator.DifferenceBaseline(0.02), progress=False)
    assert imperfect.means["sad"] > clean.means["sad"]


def test_difference_baseline_hand_case():
    src = np.zeros((2, 2, 3), np.uint8)
    bgr = src.copy()
    src[0, 0, 1] = 30  # 30/255 = 0.118 > 0.1
    src[1, 1, 2] = 20  # 0.078 ≤ 0.1
    out = evaluator.DifferenceBaseline(0.1)(src, bgr)
    assert out["pha"].tolist() == [[1, 0], [0, 0]]
    assert np.allclose(out["fgr"], src / 255.0)
    with pytest.raises(UserError, match="needs a clean plate"):
        evaluator.DifferenceBaseline(0.1)(src, None)


def test_trimap_baseline_hand_case():
    trimap = np.array([[0, 128, 255]], np.uint8)
    pha = evaluator.TrimapBaseline()(np.zeros((1, 3, 3), np.uint8), trimap=trimap)["pha"]
    assert pha[0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])
    with pytest.raises(UserError, match="needs input trimaps"):
        evaluator.TrimapBaseline()(np.zeros((1, 3, 3), np.uint8))


def test_comp1k_passes_the_trimap_and_perfect_scores_zero(data):
    bench = evaluator.Comp1kBenchmark(data / "comp1k")
    assert len(bench) == 2
    oracle = LookupOracle(bench)
    result = evaluator.evaluate(bench, oracle, progress=False)
    assert result.means == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "fgr_mse": 0.0}
    assert all(call["bgr"] is None for call in oracle.calls)
    assert np.array_equal(oracle.calls[0]["trimap"], bench[0].trimap)


def test_fgr_is_scored_only_when_asked(data):
    bench = evaluator.Comp1kBenchmark(data / "comp1k")
    oracle = LookupOracle(bench, blur=1.0)
    assert "fgr_mse" in evaluator.evaluate(bench, oracle, progress=False).means
    assert "fgr_mse" not in evaluator.evaluate(bench, oracle, progress=False, score_fgr=False).means


def test_clamp_known_repairs_known_regions_only(data):
    bench = evaluator.Comp1kBenchmark(data / "comp1k")

    def garbage_in_known(src, bgr=None, trimap=None):
        pha = LookupOracle(bench, blur=1.0)(src)["pha"].copy()
        pha[trimap == 0] = 0.6
        pha[trimap == 255] = 0.3
        return {"pha": pha}

    def clean(src, bgr=None, trimap=None):
        pha = LookupOracle(bench, blur=1.0)(src)["pha"]
        return {"pha": evaluator.clamp_known(pha, trimap)}

    raw = evaluator.evaluate(bench, garbage_in_known, progress=False).means
    clamped = evaluator.evaluate(bench, garbage_in_known, clamp=True, progress=False).means
    reference = evaluator.evaluate(bench, clean, progress=False).means
    assert clamped == pytest.approx(reference)
    assert raw["sad"] == pytest.approx(clamped["sad"])  # SAD counts the unknown band only
    assert raw["conn"] != pytest.approx(clamped["conn"])  # connectivity sees the whole image


def test_conventions_relation_on_the_same_predictions(data, tmp_path):
    bench = _bench(data)
    for i in range(len(bench)):
        sample = bench[i]
        write_image(tmp_path / "pred" / f"{sample.name}.png", cv2.GaussianBlur(sample.pha, (0, 0), 1.2))
        write_image(tmp_path / "gt" / f"{sample.name}.png", sample.pha)
        write_image(tmp_path / "trimap" / f"{sample.name}.png", sample.trimap)
    saved = evaluator.SavedPredictions(tmp_path / "pred", tmp_path / "gt", tmp_path / "trimap")
    standard = evaluator.evaluate(saved, convention="standard", progress=False)
    port = evaluator.evaluate(saved, convention="paddle-port", progress=False)
    assert set(port.means) == {"sad", "mse"}
    for s, p in zip(standard.rows, port.rows):
        n = s["pixels"]
        assert p["sad"] == pytest.approx(2 * s["sad"]) and p["sad"] > 0
        assert p["mse"] == pytest.approx(2 * s["mse"] * n / (n + 1))
    assert port.means["sad"] == pytest.approx(2 * standard.means["sad"])


def test_saved_predictions_whole_image_without_trimaps(tmp_path):
    gt = np.zeros((4, 4), np.uint8)
    pred = gt.copy()
    pred[0, 0] = 255
    write_image(tmp_path / "pred" / "a.png", pred)
    write_image(tmp_path / "gt" / "a.png", gt)
    result = evaluator.evaluate(evaluator.SavedPredictions(tmp_path / "pred", tmp_path / "gt"), progress=False)
    assert result.rows[0]["sad"] == pytest.approx(0.001) and result.rows[0]["pixels"] == 16
    assert result.rows[0]["mse"] == pytest.approx(1000 / 16)
    assert "seconds" not in result.rows[0]


def test_saved_prediction_size_mismatch_is_named(tmp_path):
    write_image(tmp_path / "pred" / "a.png", np.zeros((4, 5), np.uint8))
    write_image(tmp_path / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    saved = evaluator.SavedPredictions(tmp_path / "pred", tmp_path / "gt")
    with pytest.raises(UserError, match=r"size mismatch: .*pred.*a\.png is 5x4 but .*gt.*a\.png is 4x4"):
        evaluator.evaluate(saved, progress=False)


def test_comp1k_alpha_of_another_size_is_named(tmp_path):
    make_comp1k(tmp_path, n=1, size=24, seed=0, backgrounds_per_fg=1)
    write_image(tmp_path / "alpha_copy" / "fg0_bg0.png", np.zeros((20, 24), np.uint8))
    with pytest.raises(UserError, match=r"size mismatch: .*alpha_copy.*fg0_bg0\.png is 24x20 but .*merged"):
        evaluator.Comp1kBenchmark(tmp_path)[0]


def test_model_returning_a_wrong_size_is_reported(data):
    bench = evaluator.Comp1kBenchmark(data / "comp1k")
    with pytest.raises(ValueError, match="alpha of shape"):
        evaluator.evaluate(bench, lambda src, bgr=None, trimap=None: {"pha": np.zeros((3, 3))}, progress=False)


def test_resolution_too_small_and_negative_seed_are_rejected(data):
    with pytest.raises(UserError, match="--resolution must be at least 8"):
        _bench(data, resolution=4)
    with pytest.raises(UserError, match="--seed must be a non-negative integer, got -1"):
        _bench(data, seed=-1)
