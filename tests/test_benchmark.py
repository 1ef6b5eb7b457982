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
