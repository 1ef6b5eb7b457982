"""tools/benchmark.py measures fairly: each side in its own process (not the coordinator's), turns alternating,
the same inputs and weights on both sides, and the printed ratio / floor figures are the measured ones."""
import json
import os
import statistics

from tests.conftest import ROOT, run_script


def run_benchmark(tmp_path, *extra):
    path = tmp_path / "result.json"
    done = run_script("tools/benchmark.py", "--model-backbone", "mobilenetv2", "--resolution", "64x48",
                      "--sample-pixels", "400", "--backend", "dygraph", "--threads", "1", "--warmup", "1",
                      "--repeats", "2", "--json", path, *extra)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(path.read_text())
    return result, done.stdout


def test_compare_torch_runs_each_side_in_its_own_process_alternating(tmp_path):
    result, stdout = run_benchmark(tmp_path, "--compare-torch")
    pids = result["pids"]
    assert len({pids["ours"], pids["torch"], result["coordinator_pid"]}) == 3
    assert result["turns"] == ["ours", "torch"] * 3  # 1 warm-up + 2 timed rounds, alternating
    assert result["digests"]["ours"] == result["digests"]["torch"]  # same inputs, same weights
    for side in ("ours", "torch"):
        runs = result[side]["runs"]
        assert len(runs) == 2 and all(r > 0 for r in runs)
        assert result[side]["median"] == statistics.median(runs)
        assert (result[side]["min"], result[side]["max"]) == (min(runs), max(runs))
    assert result["ratio"] == result["ours"]["median"] / result["torch"]["median"]
    assert abs(result["floor_ms"] - result["gflop"] / result["matmul_gflops"] * 1000) < 1e-9
    assert result["ours_per_floor"] == result["ours"]["median"] / result["floor_ms"]
    assert result["torch_per_floor"] == result["torch"]["median"] / result["floor_ms"]
    assert result["gflop"] > 0 and result["matmul_gflops"] > 0
    line = next(l for l in stdout.splitlines() if l.startswith("mobilenetv2-64x48"))
    assert f"ratio ours/torch {result['ratio']:.2f}" in line
    assert f"ours = {result['ours_per_floor']:.1f}x floor" in line


def test_without_torch_only_our_side_is_timed(tmp_path):
    result, stdout = run_benchmark(tmp_path)
    assert result["turns"] == ["ours"] * 3 and "torch" not in result and "ratio" not in result
    assert set(result["pids"]) == {"ours"} and result["pids"]["ours"] != result["coordinator_pid"]
    assert "torch median" not in stdout and result["floor_ms"] > 0  # the floor needs the reference's FLOPs


def test_compare_backend_times_another_runtime_in_a_third_process(tmp_path):
    result, stdout = run_benchmark(tmp_path, "--compare-backend", "onnx")
    assert result["turns"] == ["ours", "other"] * 3 and result["other"]["backend"] == "onnx"
    assert result["pids"]["other"] not in (result["pids"]["ours"], result["coordinator_pid"])
    assert result["digests"]["other"] == result["digests"]["ours"]
    assert result["ratio_other"] == result["ours"]["median"] / result["other"]["median"]
    assert f"ratio dygraph/onnx {result['ratio_other']:.2f}" in stdout


def test_profile_gives_each_exported_runtime_an_op_table(tmp_path):
    path = tmp_path / "result.json"
    before = set(os.listdir(ROOT))
    done = run_script("tools/benchmark.py", "--model-backbone", "mobilenetv2", "--resolution", "64x48",
                      "--sample-pixels", "400", "--backend", "inference", "--compare-backend", "onnx",
                      "--threads", "1", "--warmup", "1", "--repeats", "1", "--profile", "2", "--markdown",
                      "--json", path)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(path.read_text())
    assert set(result["profiles"]) == {"inference", "onnx"}
    conv_ops = {"inference": "onednn_op.fused_conv2d", "onnx": "Conv"}
    for backend, profile in result["profiles"].items():
        rows = profile["rows"]
        assert profile["runs"] == 2
        assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)
        assert abs(sum(r["share"] for r in rows) - 1) < 1e-6
        assert abs(sum(r["ms"] for r in rows) - profile["total_ms"]) < 1e-6
        # every convolution of the model runs once per run (MobileNetV2 + ASPP + decoder + refiner: > 50)
        conv = next(r for r in rows if r["op"] == conv_ops[backend])
        assert conv["calls"] > 50 and conv["calls"] == int(conv["calls"])
        assert f"op profile, mobilenetv2-64x48, {backend}:" in done.stdout
    assert "| onnx: " in done.stdout.split("| config |")[1]  # the second runtime's column in the Markdown table
    assert set(os.listdir(ROOT)) == before  # the Paddle profiler's profile.log stays out of the working directory


def test_parse_paddle_profile_reads_the_merged_table_only():
    from bgmatting.engine.runtime_profile import parse_paddle_profile

    report = """------------------------->     Profiling Report     <-------------------------
Event                                  Calls       Total       Min.        Max.        Ave.        Ratio.
onednn_op.fused_conv2d                 195         225.71      0.032975    28.6332     1.15749     0.323349
  PhiKernelInstruction::infermeta      66          0.429765    0.001528    0.033146    0.00651159  0.000615675
pd_op.slice                            66          1.53937     0.006199    0.115358    0.0233237   0.00220527
------------------------->     Profiling Report     <-------------------------
Event                                           Calls       Total       Min.        Max.        Ave.        Ratio.
thread78::pd_op.full                            1           0.024756    0.024756    0.024756    0.024756    0.508598
pd_op.slice                                     9           9.0         0.1         0.1         0.1         0.1
"""
    totals, calls = parse_paddle_profile(report)
    assert dict(totals) == {"onednn_op.fused_conv2d": 225.71, "pd_op.slice": 1.53937}
    assert dict(calls) == {"onednn_op.fused_conv2d": 195, "pd_op.slice": 66}


# ------------------------------------------------------------------- --whole-process against a stand-in official repo

# A stand-in for the official inference_images.py / inference_video.py: the official flags, one line per call in
# calls.jsonl (its pid, argv, threads, the frames it found), and outputs named as the official names them, with a
# constant alpha of 100/255 so that the comparison's figure can be recomputed by the test.
FAKE_OFFICIAL = r'''
import argparse, glob, json, os, sys
import cv2, numpy as np
parser = argparse.ArgumentParser()
for flag in ("--model-type", "--model-backbone", "--model-backbone-scale", "--model-refine-mode",
             "--model-refine-sample-pixels", "--model-checkpoint", "--device", "--output-dir",
             "--images-src", "--images-bgr", "--video-src", "--video-bgr"):
    parser.add_argument(flag)
parser.add_argument("--output-types", nargs="+", required=True)
args = parser.parse_args()
if os.environ.get("FAKE_OFFICIAL_FAIL"):
    sys.exit("boom: the stand-in official script was asked to fail")
assert not os.path.exists(args.output_dir), "the official scripts prompt when the output folder exists"
if args.images_src:
    frames = sorted(glob.glob(os.path.join(args.images_src, "*.png")))
    shapes = [cv2.imread(f).shape for f in frames]
else:
    capture = cv2.VideoCapture(args.video_src)
    shapes = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        shapes.append(frame.shape)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl"), "a") as log:
    log.write(json.dumps(dict(pid=os.getpid(), argv=sys.argv[1:], cwd=os.getcwd(), frames=len(shapes),
                              threads=[os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS")],
                              checkpoint_bytes=os.path.getsize(args.model_checkpoint))) + "\n")
h, w = shapes[0][:2]
pha = np.full((h, w), 100, np.uint8)
if args.images_src:
    for f in frames:
        stem = os.path.splitext(os.path.basename(f))[0]
        for kind in args.output_types:
            os.makedirs(os.path.join(args.output_dir, kind), exist_ok=True)
        cv2.imwrite(os.path.join(args.output_dir, "com", stem + ".png"), np.dstack([cv2.imread(f), pha]))
        cv2.imwrite(os.path.join(args.output_dir, "pha", stem + ".jpg"), pha)
        cv2.imwrite(os.path.join(args.output_dir, "fgr", stem + ".jpg"), cv2.imread(f))
else:
    os.makedirs(args.output_dir)
    for kind in args.output_types:
        video = cv2.VideoWriter(os.path.join(args.output_dir, kind + ".mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25,
                                (w, h))
        for _ in shapes:
            video.write(cv2.cvtColor(pha, cv2.COLOR_GRAY2BGR))
        video.release()
'''


def fake_official_repo(tmp_path):
    repo = tmp_path / "official"
    repo.mkdir()
    for script in ("inference_images.py", "inference_video.py"):
        (repo / script).write_text(FAKE_OFFICIAL)
    return repo


def run_whole_process(tmp_path, mode, frames, *extra):
    import os

    repo = fake_official_repo(tmp_path)
    json_path, work = tmp_path / "whole.json", tmp_path / "work"
    done = run_script("tools/benchmark.py", "--whole-process", mode, "--official-repo", repo, "--frames", frames,
                      "--resolution", "64x48", "--sample-pixels", "3072", "--threads", "1", "--repeats", "1",
                      "--work-dir", work, "--json", json_path, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [json.loads(line) for line in (repo / "calls.jsonl").read_text().splitlines()]
    expected_extra = ([] if len(os.sched_getaffinity(0)) == 1 else ["--cpu-threads", "1"]) + [
        "--model-refine-sample-pixels", "3072"]  # 64x48: 192 patches of 4x4, all the official refiner can take
    return json.loads(json_path.read_text()), calls, work, done.stdout, expected_extra


def flag(argv, name):
    return argv[argv.index(name) + 1]


def check_turns_processes_and_inputs(result, calls, work, expected_extra, src_flag, bgr_flag):
    """Alternating fresh processes, ours' first run cold, both sides given the same files and threads."""
    import os

    from tests.conftest import ROOT

    runs = result["runs"]
    assert result["turns"] == [r["side"] for r in runs] == ["ours", "official", "ours", "official"]
    assert [r["cold"] for r in runs] == [True, False, False, False]
    pids = [r["pid"] for r in runs]
    assert len(set(pids + [result["coordinator_pid"]])) == 5  # four processes, none of them the coordinator
    assert [c["pid"] for c in calls] == pids[1::2]  # the official script really ran, in those processes
    assert all(a["ended"] <= b["started"] for a, b in zip(runs, runs[1:]))  # one after another, never overlapping
    for ours, official, call in zip(runs[0::2], runs[1::2], calls):
        assert ours["argv"][2:] == ["--model-checkpoint", flag(official["argv"], "--model-checkpoint"),
                                    "--src", flag(official["argv"], src_flag), "--bgr",
                                    flag(official["argv"], bgr_flag), "--output-dir", ours["output"],
                                    "--output-types", "com", "pha", "fgr", *expected_extra]  # predict.py's defaults
        assert ours["argv"][1] == os.path.join(ROOT, "predict.py") and call["argv"] == official["argv"][2:]
        assert call["threads"] == ["1", "1"] and call["checkpoint_bytes"] > 1_000_000  # a real state dict
        assert flag(call["argv"], "--device") == "cpu" and flag(call["argv"], "--model-refine-mode") == "sampling"
    # the cold run exported into a cache of this invocation's own; the warm run found it
    entries = list((work / "export-cache").glob("*/cache.json"))
    assert entries and all(runs[0]["started"] <= e.stat().st_mtime <= runs[0]["ended"] for e in entries)


def check_ratios(result, stdout):
    seconds = {side: [r["seconds"] for r in result["runs"] if r["side"] == side and not r["cold"]]
               for side in ("ours", "official")}
    official = statistics.median(r["seconds"] for r in result["runs"] if r["side"] == "official")
    assert result["ours_cold"]["runs"] == [result["runs"][0]["seconds"]]
    assert result["ours_warm"]["runs"] == seconds["ours"] and result["official"]["median"] == official
    assert result["ratio_warm"] == statistics.median(seconds["ours"]) / official
    assert result["ratio_cold"] == result["runs"][0]["seconds"] / official
    assert f"| {result['ratio_warm']:.2f} |" in stdout and f"| {result['ratio_cold']:.2f} |" in stdout


def test_whole_process_images_alternates_fresh_processes_on_the_same_files(tmp_path):
    import cv2
    import numpy as np

    result, calls, work, stdout, expected_extra = run_whole_process(tmp_path, "images", 2)
    check_turns_processes_and_inputs(result, calls, work, expected_extra, "--images-src", "--images-bgr")
    assert [c["frames"] for c in calls] == [2, 2] and result["inputs"]["names"] == ["frame_0000", "frame_0001"]
    assert result["kinds"] == {"ours": {"com": "png", "pha": "png", "fgr": "png"},
                               "official": {"com": "png", "pha": "jpg", "fgr": "jpg"}}
    check_ratios(result, stdout)
    # the alphas compared are the last runs' files: ours against the stand-in's constant 100/255
    ours = work / "outputs" / "1-ours" / "pha"
    expected = np.mean([np.abs(cv2.imread(str(ours / f"{n}.png"), 0).astype(float) - 100).mean()
                        for n in result["inputs"]["names"]])
    assert result["alpha"]["frames"] == 2 and abs(result["alpha"]["mean_abs_255"] - expected) < 1e-3
    assert f"mean |Δ| {expected:.2f}/255 over 2 frame(s)" in stdout


def test_whole_process_video_reports_fps_and_our_model_busy_share(tmp_path):
    import re

    result, calls, work, stdout, expected_extra = run_whole_process(tmp_path, "video", 3)
    check_turns_processes_and_inputs(result, calls, work, expected_extra, "--video-src", "--video-bgr")
    assert [c["frames"] for c in calls] == [3, 3]  # the clip the tool wrote has the frames asked for
    assert result["kinds"] == {side: {"com": "mp4", "pha": "mp4", "fgr": "mp4"} for side in ("ours", "official")}
    check_ratios(result, stdout)
    for key in ("ours_cold", "ours_warm", "official"):
        assert result[key]["fps"] == 3 / result[key]["median"]
    warm_log = (work / "logs" / "1-ours.log").read_text()
    busy = int(re.search(r"model busy (\d+)%", warm_log).group(1)) / 100
    assert result["ours_model_busy"]["runs"] == [busy]
    assert result["alpha"]["frames"] == 3 and result["alpha"]["frames_official"] == 3
    assert 0 <= result["alpha"]["mean_abs_255"] <= 255


def test_whole_process_without_the_official_repo_is_one_error_line(tmp_path):
    done = run_script("tools/benchmark.py", "--whole-process", "images", "--frames", "2")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: --whole-process needs --official-repo DIR") and "PeterL1n" in done.stderr
    empty = tmp_path / "not-the-repo"
    empty.mkdir()
    done = run_script("tools/benchmark.py", "--whole-process", "video", "--official-repo", empty)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: --official-repo {empty}: no inference_video.py there (expected a checkout of "
        "https://github.com/PeterL1n/BackgroundMattingV2)")


def test_whole_process_refuses_flags_that_do_not_apply(tmp_path):
    repo = fake_official_repo(tmp_path)
    done = run_script("tools/benchmark.py", "--whole-process", "images", "--official-repo", repo, "--compare-torch")
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: --whole-process runs predict.py against the official script: --compare-torch does not apply")
    done = run_script("tools/benchmark.py", "--official-repo", repo)
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: --official-repo belongs to --whole-process images|video, which was not given")
    done = run_script("tools/benchmark.py", "--whole-process", "images", "--official-repo", repo, "--resolution",
                      "64x48")  # the official sampling asks torch.topk for 5000 of 192 patches and crashes
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: the official refiner cannot pick --sample-pixels 80000 // 16 = 5000 patches of a 64x48 frame, which "
        "has 192; lower --sample-pixels or raise --resolution")
    assert not (repo / "calls.jsonl").exists()


def test_whole_process_names_a_failing_official_run(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    repo = fake_official_repo(tmp_path)
    done = subprocess.run([sys.executable, "tools/benchmark.py", "--whole-process", "images", "--official-repo",
                           str(repo), "--frames", "1", "--resolution", "64x48", "--sample-pixels", "400", "--threads",
                           "1", "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, FAKE_OFFICIAL_FAIL="1"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: official run 1 failed with exit 1 (rerun with --work-dir DIR to keep its log): ")
    assert line.endswith("boom: the stand-in official script was asked to fail")


def test_whole_process_gives_predict_py_only_what_differs_from_its_defaults():
    import os

    from bgmatting.pipeline.whole_process import WholeProcessCase, our_command

    inputs = dict(src="in/src", bgr="in/bgr")
    all_cpus = len(os.sched_getaffinity(0))
    default = WholeProcessCase("images", 2, (64, 48), "resnet50", threads=all_cpus, repeats=1)
    assert our_command(default, "predict.py", inputs, "w.pth", "out")[1:] == [
        "predict.py", "--model-checkpoint", "w.pth", "--src", "in/src", "--bgr", "in/bgr", "--output-dir", "out",
        "--output-types", "com", "pha", "fgr"]
    asked = WholeProcessCase("images", 2, (64, 48), "resnet50", threads=all_cpus + 1, repeats=1, backbone_scale=0.5,
                             sample_pixels=20_000, backend="inference")
    assert our_command(asked, "predict.py", inputs, "w.pth", "out")[14:] == [
        "--backend", "inference", "--cpu-threads", str(all_cpus + 1), "--model-backbone-scale", "0.5",
        "--model-refine-sample-pixels", "20000"]
