"""Op-level profiles of an export on Paddle Inference or onnxruntime: where a runtime spends its time.

:func:`profile_export` runs an export directory a few times with the runtime's own profiler switched on and returns
one row per op type (ms per run, share of all op time, calls per run), largest first — the table that says which
kernels bound a runtime (``tools/benchmark.py --profile``).

- onnxruntime: ``SessionOptions.enable_profiling``; the first run (kernel set-up) is left out by its timestamps.
- Paddle Inference: ``Config.enable_profile()``, whose report the library prints to the process's stdout when the
  predictor is destroyed; it is captured at the file-descriptor level and parsed. The report covers every run of a
  predictor, the first of which creates the oneDNN primitives, so two predictors are profiled — one run, and
  1 + ``runs`` runs — and the difference is the ``runs`` steady-state runs.
"""
import collections
import json
import os
import re
import tempfile

from bgmatting.errors import UserError

_PADDLE_ROW = re.compile(r"^(?P<op>(?:pd_op|onednn_op|cinn_op|custom_op|builtin)[\w.]*)\s+(?P<calls>\d+)\s+"
                         r"(?P<total>[\d.eE+-]+)\s")


def profile_export(backend: str, export_dir, inputs, threads: int, runs: int = 3) -> dict:
    """Op-type profile of ``export_dir`` on ``backend`` (``"onnx"`` or ``"inference"``), CPU, ``threads`` threads.

    Args:
        inputs: the export's inputs, float32 numpy arrays in its input order (BGMv2: src, bgr (1, 3, H, W) in
            [0, 1]; ViTMatte: (1, 4, H, W)).
        runs: profiled runs (≥ 1), after one unprofiled warm-up run.
    Returns:
        ``{"backend", "runs", "total_ms" (op time per run), "rows": [{"op", "ms", "share", "calls"}], "note"}``,
        rows sorted by time per run, descending.
    """
    if runs < 1:
        raise UserError("profile runs must be >= 1")
    if backend == "onnx":
        totals, calls, note = _profile_onnx(export_dir, inputs, threads, runs)
    elif backend == "inference":
        totals, calls, note = _profile_paddle_inference(export_dir, inputs, threads, runs)
    else:
        raise UserError(f"--profile needs an exported runtime (onnx or inference), not {backend!r}")
    total = sum(totals.values())
    rows = [dict(op=op, ms=ms / runs, share=ms / total if total else 0.0, calls=calls[op] / runs)
            for op, ms in sorted(totals.items(), key=lambda item: -item[1])]
    return dict(backend=backend, runs=runs, total_ms=total / runs, rows=rows, note=note)


def _profile_onnx(export_dir, inputs, threads, runs):
    import onnxruntime

    from bgmatting.export import ONNX_NAME

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="bgmatting-profile-") as folder:
        options.profile_file_prefix = os.path.join(folder, "ort")
        session = onnxruntime.InferenceSession(os.path.join(export_dir, ONNX_NAME), options,
                                               providers=["CPUExecutionProvider"])
        feed = dict(zip([i.name for i in session.get_inputs()], inputs))
        for _ in range(runs + 1):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    first_end = starts[1] if len(starts) > 1 else 0
    totals, calls = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= first_end:
            op = event["args"].get("op_name", "?")
            totals[op] += event["dur"] / 1000
            calls[op] += 1
    return totals, calls, "onnxruntime kernel times; the warm-up run left out"


def _profile_paddle_inference(export_dir, inputs, threads, runs):
    from paddle import inference

    from bgmatting.export import MODEL_PREFIX

    def predictor(profile):
        prefix = os.path.join(export_dir, MODEL_PREFIX)
        config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        config.disable_glog_info()
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads)
        config.enable_mkldnn()
        if profile:
            config.enable_profile()
        made = inference.create_predictor(config)
        for name, array in zip(made.get_input_names(), inputs):
            handle = made.get_input_handle(name)
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        return made

    def report(count):
        here = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="bgmatting-profile-") as folder, \
                tempfile.TemporaryFile(mode="w+") as captured:
            saved = [os.dup(1), os.dup(2)]
            try:
                os.chdir(folder)  # the profiler also writes a profile.log into the working directory
                os.dup2(captured.fileno(), 1)
                os.dup2(captured.fileno(), 2)
                profiled = predictor(True)
                for _ in range(count):
                    profiled.run()
                del profiled  # prints the report
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
                os.chdir(here)
            captured.seek(0)
            return parse_paddle_profile(captured.read())

    (first, first_calls), (every, every_calls) = report(1), report(1 + runs)
    totals = collections.Counter({op: max(ms - first.get(op, 0.0), 0.0) for op, ms in every.items()})
    calls = collections.Counter({op: max(n - first_calls.get(op, 0), 0) for op, n in every_calls.items()})
    return totals, calls, "Paddle Inference (oneDNN) profiler; the first run (oneDNN primitive creation) left out"


def parse_paddle_profile(report: str):
    """(ms per op type, calls per op type) from Paddle Inference's profiling report (the rows of its first table:
    ``op calls total min max ave ratio``, the indented sub-rows such as ``infermeta`` left out)."""
    totals, calls = collections.Counter(), collections.Counter()
    seen_table = False
    for line in report.splitlines():
        if "Profiling Report" in line:
            if seen_table and totals:
                break  # a second report section (per thread) repeats the ops
            seen_table = True
        match = _PADDLE_ROW.match(line)
        if match:
            totals[match["op"]] += float(match["total"])
            calls[match["op"]] += int(match["calls"])
    if not totals:
        raise UserError("Paddle Inference printed no profiling report (is this a CPU build with the profiler?)")
    return totals, calls
