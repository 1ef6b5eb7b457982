"""Evaluation outputs: worst-N selection, error map, table, CSV, JSON, saved predictions."""
import csv
import json

import numpy as np
import pytest

from bgmatting.data.io import read_alpha
from bgmatting.engine.evaluator import EvalResult, EvalSample
from bgmatting.eval_report import (PredictionSaver, WorstImages, error_map, format_table, write_metrics_json,
                                   write_per_image_csv)


def _sample(name, with_src=True):
    pha = np.zeros((6, 8), np.float32)
    pha[:, 4:] = 1.0
    src = np.full((6, 8, 3), 90, np.uint8) if with_src else None
    return EvalSample(name=name, pha=pha, trimap=np.full((6, 8), 128, np.uint8), src=src)


def test_worst_images_keeps_the_n_highest_in_order(tmp_path):
    worst = WorstImages(2, side=16)
    for name, sad in (("a", 1.0), ("b", 5.0), ("c", 3.0), ("d", 4.0)):
        worst(_sample(name), np.zeros((6, 8), np.uint8), None, {"name": name, "sad": sad})
    assert [row["name"] for row, _ in worst.worst()] == ["b", "d"]
    panel = worst.worst()[0][1]
    assert panel.shape == (16, 4 * 16, 3) and panel.dtype == np.uint8  # source | GT | prediction | error
    written = worst.write(tmp_path, "t")
    assert [p.name for p in written] == ["01.png", "02.png", "worst.png", "report.html"]
    page = (tmp_path / "report.html").read_text()
    assert page.index("1. b") < page.index("2. d") and "SAD (/1000) 5.0000" in page


def test_worst_images_without_source_and_disabled():
    worst = WorstImages(1, side=16)
    worst(_sample("x", with_src=False), np.zeros((6, 8), np.uint8), None, {"name": "x", "sad": 1.0})
    assert worst.worst()[0][1].shape == (16, 3 * 16, 3)
    none = WorstImages(0)
    none(_sample("x"), np.zeros((6, 8), np.uint8), None, {"name": "x", "sad": 1.0})
    assert none.worst() == [] and none.write("/nonexistent") == []


def test_error_map_colours_error_and_dims_known_regions():
    gt = np.zeros((2, 2), np.float32)
    pred = np.array([[0, 255], [0, 255]], np.uint8)
    trimap = np.array([[128, 128], [0, 0]], np.uint8)
    heat = error_map(pred, gt, trimap)
    assert heat.shape == (2, 2, 3) and heat.dtype == np.uint8
    assert heat[0, 1].sum() > heat[1, 1].sum() > 0  # same error, dimmed outside the unknown band
    assert heat[0, 1].sum() > 3 * heat[0, 0].sum()  # full error is much brighter than none
    assert np.array_equal(error_map(pred, pred / 255.0), error_map(np.zeros_like(pred), gt))  # zero error maps


def test_table_csv_and_json(tmp_path):
    rows = [{"name": "a", "sad": 1.0, "mse": 2.0, "pixels": 10, "seconds": 0.5},
            {"name": "b", "sad": 3.0, "mse": 4.0, "pixels": 20, "seconds": 0.25}]
    result = EvalResult(rows=rows, convention="paddle-port")
    assert result.means == {"sad": 2.0, "mse": 3.0}
    table = format_table(result, "demo")
    assert "demo — 2 images" in table and "2.0000" in table and "3.0000" in table
    assert "convention: paddle-port" in table and "(n+1)" in table
    write_per_image_csv(tmp_path / "per_image.csv", result)
    with open(tmp_path / "per_image.csv", newline="") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == ["name", "sad", "mse", "pixels", "seconds"] and read[1]["sad"] == "3"
    write_metrics_json(tmp_path / "metrics.json", result, {"seed": 7})
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["means"] == {"sad": 2.0, "mse": 3.0} and payload["seed"] == 7 and payload["count"] == 2
    assert payload["units"]["mse"] == "MSE (x1e-3)" and "n+1" in payload["convention_text"]
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_prediction_saver_writes_alpha_foreground_and_inputs(tmp_path):
    sample = _sample("sub/x")
    sample.bgr = np.zeros((6, 8, 3), np.uint8)
    pred8 = np.arange(48, dtype=np.uint8).reshape(6, 8)
    PredictionSaver(tmp_path, inputs=True)(sample, pred8, np.zeros((6, 8, 3), np.uint8), {})
    assert np.array_equal(read_alpha(tmp_path / "pha" / "sub" / "x.png"), pred8 / np.float32(255))
    assert (tmp_path / "fgr" / "sub" / "x.png").exists()
    assert read_alpha(tmp_path / "inputs" / "pha" / "sub" / "x.png") == pytest.approx(sample.pha)
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == ["bgr", "pha", "src", "trimap"]
