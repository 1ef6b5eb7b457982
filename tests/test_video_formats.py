"""Video that editors can use (issue 16): PyAV reading (exact timestamps, rotation, decoded counts, damaged and corrupt
files) and writing (H.264, HEVC, ProRes 4444 and VP9 with alpha, png sequences, 16-bit alpha), timestamps, colour
tags and audio carried over, on a clip the tests make with PyAV: 30 frames at a variable frame rate, a sine-tone AAC
track, a 90° rotation tag and BT.709 tags."""
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from bgmatting.data.io import read_alpha, read_image
from bgmatting.data.video import OpenCVVideoSource, VideoEncoder, VideoSource, open_source
from bgmatting.engine.predictor import Predictor
from bgmatting.models import MattingRefine
from bgmatting.pipeline.outputs import OUTPUT_NAMES
from tests.conftest import predict_error_line, save_random_model
from tests.test_predict_cli import predict

CODED = (48, 64)  # (H, W) as stored; shown rotated by 90° → (64, 48)
SHOWN = (64, 48)
TIME_BASE = Fraction(1, 90000)
#: variable frame rate: every third frame lasts 1/15 s, the others 1/30 s
PTS = [sum(6000 if i % 3 == 0 else 3000 for i in range(k)) for k in range(30)]
AUDIO_RATE = 48000


def _background():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (*CODED, 3), dtype=np.uint8), (0, 0), 2)


def _frames():
    """The 30 frames as stored (coded orientation): a grey square moving over the background."""
    frames = []
    for i in range(30):
        frame = _background().copy()
        frame[14:34, 2 + i:16 + i] = 128
        frames.append(frame)
    return frames


def make_clip(path, frames, pts=PTS, rotation=90, audio=True, codec="libx264"):
    """Write ``frames`` with PyAV at timestamps ``pts`` (1/90000 s), a rotation tag, BT.709 tags and a 440 Hz tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=30)
        video.width, video.height, video.pix_fmt = CODED[1], CODED[0], "yuv420p"
        video.time_base = video.codec_context.time_base = TIME_BASE
        for key in ("colorspace", "color_primaries", "color_trc"):
            setattr(video.codec_context, key, 1)  # BT.709
        video.codec_context.color_range = 1  # limited
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=AUDIO_RATE) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for frame, stamp in zip(frames, pts):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            picture.pts, picture.time_base = stamp, TIME_BASE
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        if sound is not None:
            seconds = (pts[-1] + 3000) * TIME_BASE
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE)).astype(
                np.float32)
            for start in range(0, len(tone), 1024):
                samples = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
                samples.sample_rate, samples.pts, samples.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(samples))
            container.mux(sound.encode(None))


def audio_seconds(path):
    """Seconds of audio decoded from ``path``'s first audio stream, and its codec."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate, stream.codec_context.name


def decode_rgba(path):
    """Every frame of ``path`` as uint8 RGBA (VP9 through libvpx, whose decoder keeps the alpha layer), with pts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = av.CodecContext.create("libvpx-vp9", "r") if stream.codec_context.name == "vp9" else None
        frames = []
        for packet in container.demux(stream):
            if packet.size:
                frames += decoder.decode(packet) if decoder else packet.decode()
        if decoder:
            frames += decoder.decode(None)
        else:
            frames += stream.codec_context.decode(None)
        space = {"prores": "ITU709", "vp9": "ITU709"}.get(stream.codec_context.name)
        return [(frame.pts * stream.time_base,
                 frame.to_ndarray(format="rgba", src_colorspace=space, src_color_range="MPEG") if space else
                 frame.to_ndarray(format="rgba")) for frame in frames]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_random_model(tmp_path_factory, MattingRefine)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """ROOT/clip.mp4 (see the module docstring) and ROOT/plate.png (its background, upright)."""
    root = tmp_path_factory.mktemp("clip")
    make_clip(root / "clip.mp4", _frames())
    cv2.imwrite(str(root / "plate.png"), np.rot90(_background(), 1)[:, :, ::-1])
    return root


def run_predict(checkpoint, clip, out, *args):
    predict(checkpoint, "--src", clip / "clip.mp4", "--bgr", clip / "plate.png", "--output-dir", out, *args)


@pytest.fixture(scope="module")
def png_run(checkpoint, clip, tmp_path_factory):
    """The png sequence of com (on the default video green), pha and fgr: the model's output, exactly."""
    out = tmp_path_factory.mktemp("png") / "out"
    run_predict(checkpoint, clip, out, "--output-types", "com", "pha", "fgr", "--output-format", "png",
                "--target-bgr", "120,255,155")
    return out


def test_reader_gives_exact_timestamps_upright_frames_and_the_decoded_count(clip):
    source = open_source(clip / "clip.mp4", "--src")
    assert isinstance(source, VideoSource) and source.backend == "pyav"
    assert source.size == SHOWN and source.rotation == 90 and source.count == 30 and source.has_audio
    assert source.colour == {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    frames = list(source)
    assert [name for name, _ in frames] == [f"{i:05d}" for i in range(30)] and source.decoded == 30
    assert [source.timestamps[name] for name, _ in frames] == PTS and source.time_base == TIME_BASE
    upright = np.rot90(_frames()[7], 1)  # counter-clockwise, as the display matrix says
    assert frames[7][1].shape == (*SHOWN, 3) and np.abs(frames[7][1].astype(int) - upright).mean() < 3


def test_mp4_round_trip_keeps_frames_timestamps_audio_rotation_and_colour_tags(checkpoint, clip, tmp_path, capsys):
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "com", "pha")  # default: mp4, com on green
    captured = capsys.readouterr()
    assert "wrote com, pha for 30 frame(s)" in captured.out
    assert "--src: decoded 30 frame(s) with PyAV; model busy" in captured.err
    source_audio, _ = audio_seconds(clip / "clip.mp4")
    for kind in ("com", "pha"):
        result = VideoSource(out / f"{kind}.mp4")
        frames = list(result)
        assert len(frames) == 30 and result.decoded == 30 and result.codec == "h264"
        assert result.size == SHOWN and result.rotation == 0  # rotated once, and not tagged again
        tick = max(result.time_base, TIME_BASE)
        for (name, _), want in zip(frames, PTS):
            assert abs(result.timestamps[name] * result.time_base - want * TIME_BASE) <= tick
        assert result.colour == {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
        seconds, codec = audio_seconds(out / f"{kind}.mp4")
        assert codec == "aac" and abs(seconds - source_audio) <= 1024 / AUDIO_RATE  # copied: same packets


def test_prores_4444_com_carries_the_alpha(checkpoint, clip, png_run, tmp_path):
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "com", "--output-format", "mov-prores4444")
    frames = decode_rgba(out / "com.mov")
    assert len(frames) == 30
    for index in (0, 17, 29):
        stamp, rgba = frames[index]
        assert stamp == PTS[index] * TIME_BASE
        pha = read_alpha(png_run / f"pha/{index:05d}.png")
        fgr = read_image(png_run / f"fgr/{index:05d}.png").astype(int)
        want = np.where(pha[..., None] > 0, fgr, 0)  # the cut-out: fgr where alpha > 0
        assert np.abs(rgba[..., 3] / 255.0 - pha).max() <= 1 / 255 + 1e-6  # 10-bit alpha: within 1/255
        assert np.abs(rgba[..., :3].astype(int) - want).max() <= 3  # 10-bit 4:4:4 colour: within 3/255
    with av.open(str(out / "com.mov")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores" and stream.codec_context.pix_fmt.startswith("yuva444p")
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"


def test_vp9_webm_com_carries_the_alpha(checkpoint, clip, png_run, tmp_path):
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "com", "--output-format", "webm-alpha")
    frames = decode_rgba(out / "com.webm")
    assert len(frames) == 30
    assert VideoSource(out / "com.webm").alpha
    for index in (0, 17, 29):
        stamp, rgba = frames[index]
        assert abs(stamp - PTS[index] * TIME_BASE) <= Fraction(1, 1000)  # WebM counts milliseconds
        pha = read_alpha(png_run / f"pha/{index:05d}.png")
        fgr = read_image(png_run / f"fgr/{index:05d}.png").astype(int)
        alpha_error = np.abs(rgba[..., 3] / 255.0 - pha)
        # lossy VP9 at --crf 18: alpha within 1/255 on average, 6/255 at worst (measured 0.3-0.5 and 2-4 levels)
        assert alpha_error.mean() <= 1 / 255 and alpha_error.max() <= 6 / 255
        want = np.where(pha[..., None] > 0, fgr, 0)
        colour_error = np.abs(rgba[..., :3].astype(int) - want)
        assert colour_error.mean() <= 4  # 4:2:0 colour at --crf 18: within 4/255 on average (measured 2.2-2.6)
    seconds, codec = audio_seconds(out / "com.webm")
    assert codec == "opus" and abs(seconds - audio_seconds(clip / "clip.mp4")[0]) <= 960 / AUDIO_RATE  # re-encoded


def test_png_sequence_is_exactly_the_model_output(checkpoint, clip, png_run):
    predictor = Predictor.from_pretrained(checkpoint, model_type="mattingrefine", backbone="mobilenetv2",
                                          refine_sample_pixels=1600)
    plate = read_image(clip / "plate.png")
    for name, frame in list(open_source(clip / "clip.mp4", "--src"))[::14]:
        result = predictor(src=frame, bgr=plate)
        np.testing.assert_array_equal(read_alpha(png_run / f"pha/{name}.png", ) * 255.0,
                                      np.round(np.clip(result["pha"], 0, 1) * 255.0))


def test_h264_crf_0_is_lossless_against_the_model_output(checkpoint, clip, png_run, tmp_path):
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "com", "pha", "--crf", "0")
    for kind in ("com", "pha"):
        frames = dict(VideoSource(out / f"{kind}.mp4"))
        assert len(frames) == 30
        for name, frame in frames.items():
            want = read_image(png_run / f"{kind}/{name}.png")
            np.testing.assert_array_equal(frame, want if want.ndim == 3 else np.dstack([want] * 3), err_msg=name)


def test_hevc_round_trip(checkpoint, clip, tmp_path):
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "pha", "--output-format", "mp4-hevc")
    result = VideoSource(out / "pha.mp4")
    frames = list(result)
    assert result.codec == "hevc" and len(frames) == 30
    assert [result.timestamps[name] * result.time_base for name, _ in frames] == [p * TIME_BASE for p in PTS]
    with av.open(str(out / "pha.mp4")) as container:
        assert container.streams.video[0].codec_context.codec_tag == "hvc1" and container.streams.audio


def test_16_bit_alpha_png(checkpoint, clip, png_run, tmp_path):
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "pha", "--output-format", "png", "--pha-depth", "16")
    deep = cv2.imread(str(out / "pha/00005.png"), cv2.IMREAD_UNCHANGED)
    shallow = cv2.imread(str(png_run / "pha/00005.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == SHOWN
    assert np.abs(deep.astype(int) - shallow.astype(int) * 257).max() <= 129  # the same alpha, 257x finer
    assert len(np.unique(deep)) > len(np.unique(shallow))


def test_pha_depth_16_needs_png(checkpoint, clip, tmp_path, capsys):
    line = predict_error_line(capsys, ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2",
                                       "--model-checkpoint", checkpoint, "--src", clip / "clip.mp4", "--bgr",
                                       clip / "plate.png", "--output-dir", tmp_path / "out", "--output-types", "pha",
                                       "--pha-depth", "16"], tmp_path / "out")
    assert "--pha-depth 16" in line and "png" in line


@pytest.mark.parametrize("damage", ["garbage", "no-decodable-frame"])
def test_a_corrupt_clip_is_one_error_line(checkpoint, clip, tmp_path, capsys, damage):
    bad = tmp_path / "bad.mp4"
    if damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    else:  # the container is fine, every video packet is zeros
        data = bytearray((clip / "clip.mp4").read_bytes())
        with av.open(str(clip / "clip.mp4")) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    data[packet.pos:packet.pos + packet.size] = bytes(packet.size)
        bad.write_bytes(bytes(data))
    line = predict_error_line(capsys, ["--model-type", "mattingrefine", "--model-backbone", "mobilenetv2",
                                       "--model-checkpoint", checkpoint, "--src", bad, "--bgr", clip / "plate.png",
                                       "--output-dir", tmp_path / "out", "--output-types", "pha"], tmp_path / "out")
    assert str(bad) in line
    assert ("cannot read video" if damage == "garbage" else "no frame of the h264 video stream") in line


def test_frames_damaged_mid_stream_are_counted_and_skipped(checkpoint, clip, tmp_path, capsys):
    damaged = tmp_path / "clip.mp4"
    data = bytearray((clip / "clip.mp4").read_bytes())
    with av.open(str(clip / "clip.mp4")) as container:
        packets = sorted((p.pts, p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size)
    for _, pos, size in packets[12:15]:  # three frames in the middle (in presentation order)
        data[pos:pos + size] = bytes(size)
    damaged.write_bytes(bytes(data))
    decodable = 0
    with av.open(str(damaged)) as container:  # what FFmpeg itself gets out of the file
        for packet in container.demux(container.streams.video[0]):
            try:
                decodable += len(packet.decode())
            except av.FFmpegError:
                pass
    assert decodable == 27
    out = tmp_path / "out"
    predict(checkpoint, "--src", damaged, "--bgr", clip / "plate.png", "--output-dir", out, "--output-types", "pha")
    captured = capsys.readouterr()
    assert "warning: skipped 3 frame(s) that could not be decoded: 00012, 00013, 00014" in captured.err
    assert "wrote pha for 27 frame(s)" in captured.out
    result = VideoSource(out / "pha.mp4")
    names = [name for name, _ in result]
    assert len(names) == 27  # the others keep their own timestamps: the gap is a longer frame, audio stays in sync
    kept = [p for i, p in enumerate(PTS) if i not in (12, 13, 14)]
    assert [result.timestamps[name] * result.time_base for name in names] == [p * TIME_BASE for p in kept]


def test_opencv_reads_what_pyav_cannot_open_and_says_so(clip, monkeypatch, capsys):
    from bgmatting.data import video

    def refuse(self, path, what="video"):
        raise video.CannotOpen("Invalid data found when processing input")

    monkeypatch.setattr(video.VideoSource, "__init__", refuse)
    source = open_source(clip / "clip.mp4", "--src")
    assert isinstance(source, OpenCVVideoSource) and len([f for _, f in source if f is not None]) == 30
    err = capsys.readouterr().err
    assert "warning: --src: FFmpeg (PyAV) cannot open" in err and "reading it with OpenCV instead" in err


def test_bgr_auto_reads_through_the_same_reader(checkpoint, clip, tmp_path):
    out = tmp_path / "out"
    predict(checkpoint, "--src", clip / "clip.mp4", "--bgr", "auto", "--output-dir", out, "--output-types", "pha",
            "--output-format", "png")
    plate = read_image(out / "plate.png").astype(int)
    assert plate.shape == (*SHOWN, 3)  # upright, like the frames
    assert np.abs(plate - np.rot90(_background(), 1)).mean() < 4


def test_encoder_without_a_source_writes_a_constant_rate(tmp_path):
    frames = _frames()[:5]
    with VideoEncoder(tmp_path / "a.mov", "mov-prores4444", CODED, fps=12.5) as video:
        for frame in frames:
            video.write(frame)
    result = VideoSource(tmp_path / "a.mov")
    decoded = list(result)
    assert result.fps == pytest.approx(12.5) and len(decoded) == 5 and not result.has_audio
    assert [float(result.timestamps[name] * result.time_base) for name, _ in decoded] == [i / 12.5 for i in range(5)]
    assert np.abs(decoded[2][1].astype(int) - frames[2]).max() <= 3


def test_every_video_output_name_may_be_replaced():
    assert {"com.mp4", "pha.mov", "fgr.webm"} <= OUTPUT_NAMES


@pytest.mark.parametrize("preset, subme", [(None, b"subme=0"), ("veryfast", b"subme=2"), ("medium", b"subme=7")])
def test_h264_speed_preset_reaches_the_encoder(checkpoint, clip, tmp_path, preset, subme):
    # x264 writes its settings into the stream (an SEI message): each preset has its own sub-pixel search level
    out = tmp_path / "out"
    run_predict(checkpoint, clip, out, "--output-types", "pha", *(["--preset", preset] if preset else []))
    data = (out / "pha.mp4").read_bytes()
    assert subme in data and data.count(b"subme=") == 1  # None: the default, ultrafast


def test_preset_without_an_h264_or_hevc_output_is_refused(checkpoint, clip, tmp_path, capsys):
    line = predict_error_line(capsys, ["--model-checkpoint", str(checkpoint), "--src", str(clip / "clip.mp4"),
                                       "--bgr", str(clip / "plate.png"), "--output-dir", str(tmp_path / "out"),
                                       "--output-types", "pha", "--output-format", "png", "--preset", "medium"],
                                tmp_path / "out")
    assert "--preset medium" in line and "not png" in line
