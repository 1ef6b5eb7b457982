"""predict.py and eval.py under ``python -m paddle.distributed.launch --nproc_per_node 2`` (two CPU processes)
against the same command run as one process: the same files (images byte for byte, videos with the same decoded
frames and timestamps), the same report; a rank that fails leaves no output; waits are bounded."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from bgmatting.data.synthetic import make_backgrounds, make_clean_plate_pairs, make_photomatte85
from bgmatting.data.video import VideoSource, VideoWriter
from bgmatting.errors import UserError
from bgmatting.models import MattingBase, MattingRefine
from bgmatting.pipeline.ranks import Ranks
from tests.conftest import save_random_model
from tests.test_predict_cli import moving_square_frames
from tests.test_video_formats import PTS, _frames as clip_frames, make_clip

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2", "--model-refine-sample-pixels", "1600",
         "--backend", "dygraph", "--cpu-threads", "1"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """ROOT/model.pdparams (random MattingRefine), ROOT/pairs/{src,bgr}/ (5 photos and plates), ROOT/clip.mp4
    (13 frames, a square moving over a textured background) and ROOT/plate.png (its background), ROOT/vfr.mp4 (30
    frames at a variable frame rate, rotated, with an AAC track: tests/test_video_formats.py's clip)."""
    root = tmp_path_factory.mktemp("distributed")
    (root / "model.pdparams").write_bytes(save_random_model(tmp_path_factory, MattingRefine).read_bytes())
    make_clean_plate_pairs(root / "pairs", 5, size=(45, 61), seed=0)
    frames, background = moving_square_frames(count=13)
    writer = VideoWriter(root / "clip.mp4", 10.0, frames[0].shape[:2])
    for frame in frames:
        writer.write(frame)
    writer.close()
    from bgmatting.data.io import write_image

    write_image(root / "plate.png", background)
    make_clip(root / "vfr.mp4", clip_frames())
    return root


def launch(processes: int, tool: str, *args, cwd) -> subprocess.CompletedProcess:
    """``python TOOL ARGS`` as one process (``processes`` 1) or under paddle.distributed.launch."""
    launcher = [] if processes == 1 else ["-m", "paddle.distributed.launch", "--nproc_per_node", str(processes),
                                          "--log_dir", str(Path(cwd) / f"log{processes}")]
    return subprocess.run([sys.executable, *launcher, str(ROOT / tool), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=180, env=dict(os.environ, OMP_NUM_THREADS="1"))


def predict_both(inputs, tmp_path, *args):
    """Run predict.py with ``args`` as one process and as two ranks; return the two output folders."""
    outputs = []
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        done = launch(processes, "predict.py", *MODEL, "--model-checkpoint", inputs / "model.pdparams", *args,
                      "--output-dir", out, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(out)
    assert not list(tmp_path.glob(".out*"))  # no staging folder or part left
    return outputs


def files(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path for path in sorted(folder.rglob("*")) if path.is_file()}


def test_folder_of_images_split_by_file(inputs, tmp_path):
    one, two = predict_both(inputs, tmp_path, "--src", inputs / "pairs/src", "--bgr", inputs / "pairs/bgr",
                            "--output-types", "com", "pha", "fgr")
    assert list(files(one)) == [f"{kind}/{i:04d}.png" for kind in ("com", "fgr", "pha") for i in range(5)]
    assert list(files(two)) == list(files(one))
    for name, path in files(one).items():
        assert (two / name).read_bytes() == path.read_bytes(), name


def decoded(video: Path):
    """(frames as one array, timestamps in frame order, the audio packets' (pts, bytes)) of a video."""
    source = VideoSource(video)
    frames = [frame for _, frame in source]
    with av.open(str(video)) as container:
        audio = [(packet.pts, bytes(packet)) for packet in container.demux(container.streams.audio[0]) if packet.size]
    return np.stack(frames), [source.timestamps[name] for name in sorted(source.timestamps)], audio


def test_video_split_by_frame_range_mp4_with_bgr_auto(inputs, tmp_path):
    one, two = predict_both(inputs, tmp_path, "--src", inputs / "vfr.mp4", "--bgr", "auto", "--output-types",
                            "com", "pha")
    assert sorted(files(one)) == sorted(files(two)) == ["com.mp4", "pha.mp4", "plate.png"]
    assert (two / "plate.png").read_bytes() == (one / "plate.png").read_bytes()
    logs = [(tmp_path / "log2" / f"workerlog.{rank}").read_text() for rank in (0, 1)]
    assert "estimating plate" in logs[0] and "estimating plate" not in logs[1]  # once, by rank 0, then shared
    for kind in ("com", "pha"):
        frames_one, times_one, audio_one = decoded(one / f"{kind}.mp4")
        frames_two, times_two, audio_two = decoded(two / f"{kind}.mp4")
        assert len(frames_one) == 30 and np.diff(times_one).tolist() == np.diff(PTS).tolist()  # variable rate kept
        assert times_two == times_one
        np.testing.assert_array_equal(frames_two, frames_one)
        assert len(audio_one) > 10 and audio_two == audio_one


def test_video_to_png_sequence(inputs, tmp_path):
    one, two = predict_both(inputs, tmp_path, "--src", inputs / "clip.mp4", "--bgr", inputs / "plate.png",
                            "--output-types", "pha", "com", "--output-format", "png")
    assert list(files(one)) == [f"{kind}/{i:05d}.png" for kind in ("com", "pha") for i in range(13)]
    assert list(files(two)) == list(files(one))
    for name, path in files(one).items():
        assert (two / name).read_bytes() == path.read_bytes(), name


def test_eval_report_identical(tmp_path):
    make_photomatte85(tmp_path / "pm85", n=5, size=48, seed=0)
    make_backgrounds(tmp_path / "bg", n=2, size=40, seed=0)
    import paddle

    paddle.seed(0)
    paddle.save(MattingBase("mobilenetv2").state_dict(), str(tmp_path / "base.pdparams"))
    reports = []
    for processes in (1, 2):
        save = tmp_path / f"eval{processes}"
        done = launch(processes, "eval.py", "--data", tmp_path / "pm85", "--backgrounds", tmp_path / "bg",
                      "--resolution", "64", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                      "--model-checkpoint", tmp_path / "base.pdparams", "--worst", "3",
                      "--save-dir", save, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        metrics = json.loads((save / "metrics.json").read_text())
        metrics.pop("seconds_per_image")
        with open(save / "per_image.csv", newline="") as file:
            rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]
        reports.append((metrics, rows, sorted(p.name for p in save.iterdir()), (save / "worst.png").read_bytes(),
                        (save / "report.html").read_text()))
    (metrics1, rows1, names1, worst1, html1), (metrics2, rows2, names2, worst2, html2) = reports
    assert metrics1["count"] == 5 and len(rows1) == 5 and metrics1["means"]["sad"] > 0
    assert metrics2 == metrics1 and rows2 == rows1
    assert names2 == names1 == ["metrics.json", "per_image.csv", "report.html", "worst", "worst.png"]
    assert worst2 == worst1 and html2 == html1


def test_a_failing_rank_leaves_no_output(inputs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted((inputs / "pairs/src").iterdir()):
        (src / path.name).write_bytes(path.read_bytes())
    (src / "0004.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # in rank 1's share only
    done = launch(2, "predict.py", *MODEL, "--model-checkpoint", inputs / "model.pdparams", "--src", src,
                  "--bgr", inputs / "pairs/bgr/0000.png", "--output-dir", tmp_path / "out", "--output-types", "pha",
                  cwd=tmp_path)
    assert done.returncode != 0
    worker = (tmp_path / "log2" / "workerlog.1").read_text()
    errors = [line for line in worker.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "0004.png" in errors[0] and "Traceback" not in worker, worker[-2000:]
    shown = done.stdout + done.stderr  # the launcher passes rank 0's output on
    assert "error: rank 1 failed: cannot read image" in shown or "Container rank 1 status failed" in shown, shown
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_alone_gives_up_after_the_timeout(inputs, tmp_path, rank):
    """Rank 0 (or 1) started without the other, as if it never came up: a bounded wait, one error line, nothing
    written."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PADDLE_TRAINERS_NUM="2", PADDLE_TRAINER_ID=str(rank),
               PADDLE_MASTER=f"127.0.0.1:{port}")
    done = subprocess.run([sys.executable, str(ROOT / "predict.py"), *MODEL, "--model-checkpoint",
                           inputs / "model.pdparams", "--src", inputs / "pairs/src", "--bgr", inputs / "pairs/bgr",
                           "--output-dir", tmp_path / "out", "--output-types", "pha", "--rank-timeout", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    expected = "not every rank connected to" if rank == 0 else "rank 0 did not answer at"
    assert done.returncode == 2 and len(errors) == 1 and expected in errors[0] and "within 2 s" in errors[0], \
        done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("*out*"))


class FakeStore:
    """The TCPStore calls :class:`Ranks` makes (add/set/get), in memory."""

    def __init__(self, **counters):
        self.values = dict(counters)

    def add(self, key, amount):
        self.values[key] = self.values.get(key, 0) + amount
        return self.values[key]

    def set(self, key, value):
        self.values[key] = value

    def get(self, key):
        return self.values[key]


def test_a_rank_without_progress_is_named_after_the_timeout():
    ranks = Ranks(0, 3, "127.0.0.1:1", timeout=0.3)
    ranks.store = FakeStore(**{"done/1": 1, "progress/2": 4})
    ranks.wait_for(1)
    with pytest.raises(UserError, match=r"rank 2 did not finish: no progress for 0.3 s \(after 4 item"):
        ranks.wait_for(2)


def test_a_failed_rank_and_a_missing_rank_0_are_named():
    ranks = Ranks(0, 2, "127.0.0.1:1", timeout=5)
    ranks.store = FakeStore(**{"failed/1": 1, "message/1": b"--src: cannot read image x.png"})
    with pytest.raises(UserError, match="rank 1 failed: --src: cannot read image x.png"):
        ranks.wait_for(1)
    other = Ranks(1, 2, "127.0.0.1:1", timeout=0.2)
    other.store = FakeStore()
    with pytest.raises(UserError, match="rank 1: rank 0 did not share the staging within 0.2 s"):
        other.receive("staging")
    other.store = FakeStore(**{"failed/0": 1, "message/0": b"output directory already exists: out"})
    with pytest.raises(UserError, match="rank 0 failed: output directory already exists"):
        other.receive("staging")
    with pytest.raises(UserError, match="rank 0 failed"):
        other.beat()  # a rank stops its share at once too
    ranks.store = FakeStore(**{"failed/1": 1, "message/1": b"cannot read image"})
    with pytest.raises(UserError, match="rank 1 failed: cannot read image"):
        ranks.beat()  # rank 0 stops its own share at once


def test_what_would_differ_across_ranks_is_refused(inputs):
    from argparse import Namespace

    from bgmatting.pipeline.outputs import TargetBackground
    from tools.predict import check_ranks

    ranks, plain = Ranks(0, 2, "h:1"), Namespace(preprocess_alignment=False, target_bgr="clip.mp4")
    check_ranks(plain, TargetBackground(str(inputs / "plate.png")), ranks)  # one image: the same for every frame
    check_ranks(Namespace(preprocess_alignment=True), None, Ranks())  # one process: anything goes
    with pytest.raises(UserError, match="a background video or folder advances frame by frame"):
        check_ranks(plain, TargetBackground(str(inputs / "clip.mp4")), ranks)
    with pytest.raises(UserError, match="--preprocess-alignment starts each frame's alignment from the previous"):
        check_ranks(Namespace(preprocess_alignment=True), None, ranks)


def test_a_store_that_went_away_is_one_error_line():
    class Gone:
        def add(self, key, amount):
            raise ValueError("(InvalidArgument) TCP send error. Details: Broken pipe.")

    ranks = Ranks(1, 2, "127.0.0.1:1")
    ranks.store = Gone()
    with pytest.raises(UserError, match=r"rank 1: lost the connection to rank 0 at 127.0.0.1:1 \(it ended\?\): "
                                        r"\(InvalidArgument\) TCP send error"):
        ranks.beat()


def test_rank_timeout_is_refused_without_the_launcher(monkeypatch):
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    assert not Ranks.from_env().distributed
    with pytest.raises(UserError, match="--rank-timeout 30 applies to runs started by python -m paddle.distributed"):
        Ranks.from_env(30.0)


def test_shares_cover_every_index_once_in_rank_order():
    for count in (0, 1, 5, 13):
        shares = [Ranks(rank, 3, "h:1").share(count) for rank in range(3)]
        covered = [i for share in shares for i in range(share.start, min(share.stop, count))]
        assert covered == list(range(count))
        assert shares[-1].stop > count  # the last rank also takes frames past a wrong header count
