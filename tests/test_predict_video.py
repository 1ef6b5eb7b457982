"""Frame sources, threaded reader/writer, video writers (OpenCV baseline, PyAV encoder), the run's timing report and
--bgr auto plate estimation. (Formats, timestamps, audio and damaged clips: tests/test_video_formats.py.)"""
import threading
import time

import numpy as np
import pytest

from bgmatting.data.alignment import PlateAligner
from bgmatting.data.io import write_image
from bgmatting.data.synthetic import make_background
from bgmatting.data.plate_estimation import estimate_plate, sample_indices
from bgmatting.data.video import ThreadedReader, ThreadedWriter, VideoEncoder, VideoSource, VideoWriter, open_source
from bgmatting.errors import UserError
from bgmatting.pipeline.outputs import OutputSink
from bgmatting.pipeline.run import run
from tests.test_predict_cli import moving_square_frames
from tools.eval_alignment import add_clutter


def test_video_round_trip(tmp_path):
    frames, _ = moving_square_frames(count=6)
    writer = VideoWriter(tmp_path / "a.mp4", 12.5, frames[0].shape[:2])
    for frame in frames:
        writer.write(frame)
    assert not (tmp_path / "a.mp4").exists()  # only renamed into place on close
    writer.close()
    source = open_source(tmp_path / "a.mp4", "--src")
    assert isinstance(source, VideoSource) and source.size == (48, 64) and source.fps == pytest.approx(12.5)
    decoded = list(source)
    assert [name for name, _ in decoded] == [f"{i:05d}" for i in range(6)]
    for (_, got), want in zip(decoded, frames):
        assert np.abs(got.astype(int) - want).mean() < 4  # lossy codec, same picture and colour order


def test_abandoned_video_leaves_no_file(tmp_path):
    writer = VideoWriter(tmp_path / "a.mp4", 10, (16, 16))
    writer.write(np.zeros((16, 16), np.uint8))
    writer.close(ok=False)
    assert list(tmp_path.iterdir()) == []


def test_abandoned_encoder_leaves_no_file(tmp_path):
    video = VideoEncoder(tmp_path / "a.mp4", "mp4", (16, 16), fps=10)
    video.write(np.zeros((16, 16), np.uint8))
    video.close(ok=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output_format", ["mp4", "webm-alpha", "mov-prores4444"])
def test_encoder_takes_odd_sizes_and_grey_frames(tmp_path, output_format):
    frames, _ = moving_square_frames(count=4, size=(27, 35))
    path = tmp_path / f"a.{ {'webm-alpha': 'webm', 'mov-prores4444': 'mov'}.get(output_format, 'mp4')}"
    with VideoEncoder(path, output_format, (27, 35), fps=10) as video:
        for frame in frames:
            video.write(frame[:, :, 1])  # grey
    decoded = list(open_source(path, "--src"))
    assert len(decoded) == 4 and decoded[0][1].shape == (27, 35, 3)
    assert np.abs(decoded[3][1].astype(int) - frames[3][:, :, 1:2]).mean() < 4


def test_hevc_refuses_odd_sizes(tmp_path):
    video = VideoEncoder(tmp_path / "a.mp4", "mp4-hevc", (27, 35), fps=10)
    with pytest.raises(UserError, match="mp4-hevc needs an even width and height"):
        video.write(np.zeros((27, 35, 3), np.uint8))
    video.close(ok=False)
    assert list(tmp_path.iterdir()) == []


def test_run_reports_the_share_of_time_the_model_was_busy(tmp_path):
    frames, _ = moving_square_frames(count=6)

    def predictor(src, bgr):
        time.sleep(0.05)
        return {"pha": np.full(src.shape[:2], 0.5, np.float32), "fgr": src / 255.0}

    sink = OutputSink(("pha",), "png")
    sink.open(tmp_path)
    pairs = ((f"{i}", frame, frame) for i, frame in enumerate(frames))
    report = run(predictor, pairs, "bgr", lambda name, frame, plate: plate, sink, progress=False)
    assert report.written == 6 and report.model_seconds >= 0.3
    assert 0.5 < report.model_busy <= 1.0 and report.timing_line().startswith("model busy ")


def test_folder_source_is_sorted_and_recursive(tmp_path):
    for name in ("b/2.png", "a/9.png", "a/10.png"):
        write_image(tmp_path / name, np.zeros((4, 4, 3), np.uint8))
    assert [name for name, _ in open_source(tmp_path, "--src")] == ["a/10", "a/9", "b/2"]


def test_threaded_reader_keeps_order_and_reraises():
    def produce():
        yield from range(5)
        raise UserError("frame 5 is broken")

    seen = []
    with pytest.raises(UserError, match="frame 5 is broken"):
        for item in ThreadedReader(produce(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_threaded_reader_decodes_ahead():
    produced = []

    def produce():
        for i in range(4):
            produced.append(i)
            yield i

    iterator = iter(ThreadedReader(produce(), depth=3))
    assert next(iterator) == 0
    time.sleep(0.2)
    assert len(produced) == 4  # the producer ran ahead while the consumer was busy
    assert list(iterator) == [1, 2, 3]


def test_threaded_writer_runs_in_background_and_reports_errors():
    threads = []
    writer = ThreadedWriter()
    writer.submit(lambda: threads.append(threading.current_thread()))

    def fail():
        raise OSError("disk full")

    writer.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert threads and threads[0] is not threading.main_thread()


def test_sample_indices_spread_over_the_clip():
    assert sample_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert sample_indices(3, 48).tolist() == [0, 1, 2]


def test_plate_estimate_of_a_moving_subject_is_the_background():
    frames, background = moving_square_frames(count=12)
    estimate = estimate_plate(iter(frames), count=12)
    np.testing.assert_array_equal(estimate.plate, background)
    assert estimate.warning == "" and not estimate.unreliable.any() and estimate.frames == 12


def test_plate_estimate_warns_where_the_subject_stays_most_of_the_time():
    frames, background = moving_square_frames(count=12)
    for i, frame in enumerate(frames):  # a second square jitters over the same pixels in every frame
        frame[2:12, 2:12] = 40 + 15 * i
    estimate = estimate_plate(iter(frames), count=12)
    assert estimate.unreliable[2:12, 2:12].all() and not estimate.unreliable[30:, :].any()
    assert "unreliable for 3.3% of the frame" in estimate.warning


def test_plate_estimate_warns_when_nothing_moves():
    frames, _ = moving_square_frames(count=1)
    estimate = estimate_plate(iter(frames * 8), count=8)
    assert "no motion" in estimate.warning


def test_plate_estimate_warns_with_too_few_frames():
    frames, _ = moving_square_frames(count=3)
    assert "only 3 frame(s)" in estimate_plate(iter(frames), count=3).warning


def test_hand_held_plate_estimate_is_aligned_to_the_middle_frame():
    """Frames cut from a larger scene at offsets of a few pixels (a shaking camera) with a moving square."""
    rng = np.random.default_rng(0)
    scene = (add_clutter(make_background((200, 340), rng), rng, 150) * 255).astype(np.uint8)
    offsets = [(3, 2), (0, 5), (6, 1), (2, 7), (4, 4), (1, 0), (5, 6), (3, 3)]
    frames = []
    for i, (dy, dx) in enumerate(offsets):
        frame = scene[10 + dy:190 + dy, 10 + dx:330 + dx].copy()
        frame[60:110, 20 + 35 * i:60 + 35 * i] = 128
        frames.append(frame)
    dy, dx = offsets[len(offsets) // 2]  # the reference frame
    truth = scene[10 + dy:190 + dy, 10 + dx:330 + dx].astype(int)
    error = lambda plate: np.abs(plate[8:-8, 8:-8].astype(int) - truth[8:-8, 8:-8]).mean()  # noqa: E731
    naive = estimate_plate(iter(frames), count=len(frames)).plate
    aligned = estimate_plate(iter(frames), count=len(frames), aligner=PlateAligner("ecc")).plate
    assert error(aligned) < 1.0 and error(naive) > 5.0, (error(aligned), error(naive))
