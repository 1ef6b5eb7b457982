"""The frame pipeline's parts without a model: rendering in bands, frame names, pairing, stale staging folders."""
import os
from pathlib import Path

import numpy as np
import pytest

from bgmatting.data.compositing import cutout_rgba
from bgmatting.data.io import to_uint8
from bgmatting.data.synthetic import composite
from bgmatting.data.video import frame_names
from bgmatting.errors import UserError
from bgmatting.pipeline import render as render_module
from bgmatting.pipeline.output_dir import stale_folders
from bgmatting.pipeline.outputs import TargetBackground
from bgmatting.pipeline.pairing import PlateInput, frame_pairs
from bgmatting.pipeline.render import render


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    pha = rng.random((37, 23), dtype=np.float32)
    pha[:, :5] = 0.0
    return {"pha": pha, "fgr": rng.random((37, 23, 3), dtype=np.float32), "err": rng.random((37, 23), np.float32),
            "ref": (rng.random((37, 23)) > 0.5).astype(np.float32)}


def test_banded_rendering_equals_whole_image_rendering(result, monkeypatch):
    monkeypatch.setattr(render_module, "BAND_ROWS", 8)  # 37 rows: four full bands and a short one
    background = np.random.default_rng(1).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render("com", result), to_uint8(cutout_rgba(result["fgr"], result["pha"])))
    np.testing.assert_array_equal(render("com", result, background),
                                  to_uint8(composite(result["fgr"], result["pha"], background / 255.0)))
    for kind in ("pha", "fgr", "err", "ref"):
        image = render(kind, result)
        assert image.dtype == np.uint8
        np.testing.assert_array_equal(image, to_uint8(result[kind]))
    with pytest.raises(ValueError, match="unknown output type"):
        render("alpha", result)


def test_colour_target_is_a_uint8_view():
    background = TargetBackground("0, 255 ,7").next((4, 5))
    assert background.shape == (4, 5, 3) and background.dtype == np.uint8 and background[3, 4].tolist() == [0, 255, 7]
    with pytest.raises(UserError, match="0..255"):
        TargetBackground("0,256,0")


def test_frame_names_keep_unique_stems_and_suffix_shared_ones(tmp_path):
    files = [tmp_path / name for name in ("a.jpg", "a.png", "b.png", "sub/a.png")]
    assert frame_names(files, tmp_path) == ["a_jpg", "a_png", "b", "sub/a"]
    with pytest.raises(UserError, match="would both be written as a_png"):
        frame_names([tmp_path / n for n in ("a.jpg", "a.png", "a_png.bmp")], tmp_path)


def test_undecodable_frames_stay_paired_and_plates_are_resized():
    class Source:
        kind = "video"

        def __init__(self, frames):
            self.frames = frames

        def __iter__(self):
            return iter((f"{i:05d}", frame) for i, frame in enumerate(self.frames))

    frame = np.zeros((4, 6, 3), np.uint8)
    pairs = list(frame_pairs(Source([frame, None, frame]), Source([frame, frame, None])))
    assert [(name, a is None, b is None) for name, a, b in pairs] == [("00000", False, False), ("00001", True, False),
                                                                     ("00002", False, True)]
    plate = np.zeros((8, 12, 3), np.uint8)
    assert PlateInput(resize=True)("x", frame, plate).shape == (4, 6, 3)
    with pytest.raises(UserError, match="size mismatch for x"):
        PlateInput()("x", frame, plate)


def test_stale_folders_are_those_of_dead_processes(tmp_path):
    output = tmp_path / "out"
    dead = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 100000  # no such process
    for name in (f".out.partial-{dead}", f".out.old-{dead}", f".out.partial-{os.getpid()}", f".other.partial-{dead}",
                 "out"):
        (tmp_path / name).mkdir()
    assert [p.name for p in stale_folders(output)] == [f".out.old-{dead}", f".out.partial-{dead}"]
    assert stale_folders(Path(tmp_path / "missing/out")) == []
