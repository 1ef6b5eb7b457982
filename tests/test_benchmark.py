"""tools/benchmark.py measures fairly: each side in its own process (not the coordinator's), turns alternating,
the same inputs and weights on both sides, and the printed ratio / floor figures are the measured ones."""
import json
import statistics

from tests.conftest import run_script


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
