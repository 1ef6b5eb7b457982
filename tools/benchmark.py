"""Speed of our backends against the official PyTorch references, each side timed in a process of its own.

Example:
    python tools/benchmark.py --preset hd-mobilenetv2 --backend auto --threads 2 --compare-torch
    python tools/benchmark.py --vitmatte-memory 1024x1024 3840x2160 --backend auto --threads 2
    python tools/benchmark.py --preset vitmatte-s-4k --backend onnx --threads 2
    python tools/benchmark.py --preset hd-mobilenetv2 hd-resnet50 4k-mobilenetv2 4k-resnet50 vitmatte-s-1024 \
        --backend inference --threads 2 --repeats 5 --compare-torch --markdown
    python tools/benchmark.py --model-type mattingrefine --model-backbone resnet50 --resolution 1920x1080 \
        --backend dygraph --threads 1
    # whole process: predict.py (default flags) vs the official inference_images.py / inference_video.py
    python tools/benchmark.py --whole-process images --official-repo BackgroundMattingV2 --frames 16 \
        --resolution 1920x1080 --model-backbone mobilenetv2 --threads 2 --repeats 2 --json whole.json

How it measures (per configuration):
- a *torch worker* process builds the official model (BackgroundMattingV2's MattingRefine; transformers'
  VitMatteForImageMatting) with seeded random weights, writes its weights and the random inputs into a temporary
  folder, counts the forward's FLOPs (torch's FlopCounterMode, 2 per multiply-add) and measures the fp32 matmul
  throughput with the same threads (a 2048² matmul, best of 5) — the *floor* is FLOPs / that throughput;
- an *ours worker* process reads the same weights (converted as the checkpoint converter does) and inputs and
  runs our model on ``--backend`` (an export into the temporary folder for inference/onnx);
- the coordinator (this process, which imports neither framework) tells the workers to run one forward each in
  turn — ours, torch, ours, torch … — with a short pause between turns so that an idle side's thread pool has
  stopped spinning; each worker times its own forward, and the coordinator samples the running worker's resident
  set (every 5 ms) for its peak growth. Median ms/frame after ``--warmup`` runs, min and max over ``--repeats``.
Both workers get the same ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and framework thread settings.

``--whole-process images|video`` instead times whole processes: ``predict.py`` with its default flags against the
official ``inference_images.py`` / ``inference_video.py --device cpu`` of a checkout given by ``--official-repo``,
on the same synthetic frames and official-format checkpoint, turns alternating, ours' first (export-cache cold) run
reported apart (:mod:`bgmatting.pipeline.whole_process`).

Weights are random and the decoder's error channel is set to ≈ 0.5 everywhere so that sampling mode refines all
refine_sample_pixels / 16 patches (the official HD/4K settings' full workload) on both sides.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="No ccache found")

from bgmatting.errors import UserError, cli_main  # noqa: E402

# name -> (model type, backbone, (width, height), backbone_scale, refine_sample_pixels)
PRESETS = {
    "hd-mobilenetv2": ("mattingrefine", "mobilenetv2", (1920, 1080), 0.25, 80_000),
    "hd-resnet50": ("mattingrefine", "resnet50", (1920, 1080), 0.25, 80_000),
    "4k-mobilenetv2": ("mattingrefine", "mobilenetv2", (3840, 2160), 0.125, 320_000),
    "4k-resnet50": ("mattingrefine", "resnet50", (3840, 2160), 0.125, 320_000),
    "vitmatte-s-1024": ("vitmatte", "vit-s", (1024, 1024), None, None),
    "vitmatte-s-2048": ("vitmatte", "vit-s", (2048, 2048), None, None),
}
# name -> WIDTHxHEIGHT timed as --vitmatte-memory (chunked attention, tiled decoder; no torch side: the official
# model's plain attention at 3840x2160 needs > 25 GB for one score matrix)
MEMORY_PRESETS = {"vitmatte-s-4k": "3840x2160"}
VITMATTE_S = dict(hidden_size=384, num_attention_heads=6, num_hidden_layers=12,
                  window_block_indices=[0, 1, 3, 4, 6, 7, 9, 10], residual_block_indices=[2, 5, 8, 11],
                  window_size=14, image_size=512, pretrain_image_size=224, convstream=[48, 96, 192],
                  fusion=[256, 128, 64, 32])
OFFICIAL_BACKBONES = ("resnet101", "resnet50", "mobilenetv2")  # those the official torch model has (not imported
# from bgmatting.models here: the coordinator process stays free of Paddle)
BACKEND_CHOICES = ["auto", "dygraph", "inference", "onnx"]
PAUSE_SECONDS = 0.3  # between turns: longer than OpenMP's spin-wait (Intel's KMP_BLOCKTIME is 200 ms)


def parse_args(argv=None):
    from bgmatting.cli_help import HelpFormatter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--preset", nargs="+", choices=[*PRESETS, *MEMORY_PRESETS],
                        help="the issue's configurations (vitmatte-s-4k: as --vitmatte-memory 3840x2160)")
    parser.add_argument("--model-type", choices=["mattingrefine", "vitmatte"], default="mattingrefine",
                        help="the model timed (without --preset)")
    parser.add_argument("--model-backbone", choices=OFFICIAL_BACKBONES, default="mobilenetv2",
                        help="BackgroundMattingV2 backbone (the official ones: the PyTorch reference exists for them)")
    parser.add_argument("--resolution", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--backbone-scale", type=float, default=0.25, help="base network scale")
    parser.add_argument("--sample-pixels", type=int, default=80_000, help="pixels the refiner refines (sampling)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="inference",
                        help="our runtime; auto = the Predictor's default (the fastest installed runtime); with "
                             "--whole-process: predict.py's --backend, given only when this flag is")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per side (median, min, max reported); with --whole-process: rounds after "
                             "the first, whose run of ours has the export cache cold")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time the official PyTorch reference (in its own process, turns alternating)")
    parser.add_argument("--compare-backend", choices=BACKEND_CHOICES,
                        help="also time our model on this runtime (a third process, same turns), e.g. onnx vs inference")
    parser.add_argument("--profile", type=int, metavar="RUNS", default=0,
                        help="after timing, profile RUNS runs of each exported runtime of ours with the runtime's own "
                             "profiler and print the op-type table (Paddle Inference / onnxruntime)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table at the end")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the results to PATH (a list of dicts; --whole-process: one dict)")
    parser.add_argument("--vitmatte-memory", nargs="+", metavar="WIDTHxHEIGHT",
                        help="instead: ViTMatte-S with chunked attention and a tiled decoder on --backend, fresh "
                             "processes per size, printing time and peak RSS (runtimes: the export-cached run; e.g. "
                             "1024x1024 3840x2160)")
    whole = parser.add_argument_group("whole process (instead of the kernel timing)")
    whole.add_argument("--whole-process", choices=["images", "video"],
                       help="time predict.py (default flags) against the official inference_images.py / "
                            "inference_video.py --device cpu, each run a fresh process, turns alternating")
    whole.add_argument("--official-repo", metavar="DIR",
                       help="a checkout of github.com/PeterL1n/BackgroundMattingV2 (not shipped; needed by "
                            "--whole-process)")
    whole.add_argument("--frames", type=int, help="frames of the synthetic input (default 16 images, 300 video)")
    whole.add_argument("--work-dir", metavar="DIR",
                       help="keep the inputs, checkpoint, outputs and logs in this (new or empty) folder "
                            "(default: a temporary folder, removed)")
    parser.add_argument("--worker", choices=["torch", "ours", "vitmatte"], help=argparse.SUPPRESS)  # internal: one side
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def vitmatte_memory(sizes, backend, threads):
    """Time and peak RSS of bounded-memory ViTMatte-S (random weights, chunked attention, tiled decoder) per size,
    each in its own process: on ``dygraph`` one forward; on a runtime (``auto`` = the Predictor's default) a first
    process exports into a fresh export cache and runs once, then a second process runs once from the cache (no
    export: checked) — its time and peak RSS are the cached figures."""
    from bgmatting.models.vitmatte.profile import measure_vitmatte_in_subprocess

    for text in sizes:
        width, height = parse_resolution(text)
        if backend == "dygraph":
            r = measure_vitmatte_in_subprocess(size="small", height=height, width=width)
            print(f"vitmatte-s {width}x{height}: {r['tokens']} tokens, chunk {r['attention_chunk_size']}, "
                  f"tile {r['decoder_tile_size']}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB",
                  flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="bgmatting-vitmatte-") as workdir:
            spec = dict(workdir=workdir, backend=backend, threads=threads, size=[width, height])
            first, cached = (_vitmatte_runtime_process(spec) for _ in range(2))
        if cached["exports_built"]:
            raise RuntimeError(f"the second process exported again ({cached['exports_built']} exports)")
        print(f"vitmatte-s {width}x{height}: {cached['tokens']} tokens, chunk {cached['attention_chunk_size']}, "
              f"tile {cached['decoder_tile_size']}, {cached['backend']} {threads} thread(s): first run (export) "
              f"{first['seconds']:.1f} s, cached run {cached['seconds']:.1f} s, peak RSS {cached['peak_rss_mb']:.0f} "
              "MB", flush=True)


def _vitmatte_runtime_process(spec) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "vitmatte", "--spec",
                           json.dumps(spec)], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the ViTMatte worker failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def vitmatte_runtime_worker(spec) -> dict:
    """One Predictor call of random-weight ViTMatte-S (seeded, saved into the work folder) with the memory options
    of :mod:`bgmatting.models.vitmatte.profile`, its export cache in the work folder."""
    import numpy as np
    import paddle

    from bgmatting.engine import export_cache
    from bgmatting.engine.predictor import Predictor
    from bgmatting.models import ViTMatte
    from bgmatting.models.vitmatte.profile import DEFAULT_ATTENTION_CHUNK, DEFAULT_DECODER_TILE, peak_rss_mb

    os.environ[export_cache.ENVIRONMENT_VARIABLE] = os.path.join(spec["workdir"], "exports")
    weights = os.path.join(spec["workdir"], "vitmatte_s.pdparams")
    if not os.path.exists(weights):
        paddle.seed(0)
        paddle.save(ViTMatte("small").state_dict(), weights)
    width, height = spec["size"]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    trimap = rng.choice(np.array([0, 128, 255], dtype=np.uint8), size=(height, width))
    predictor = Predictor("vitmatte", checkpoint=weights, backend=spec["backend"], cpu_threads=spec["threads"],
                          attention_chunk_size=DEFAULT_ATTENTION_CHUNK, decoder_tile_size=DEFAULT_DECODER_TILE)
    start = time.perf_counter()
    predictor(image, trimap=trimap)
    seconds = time.perf_counter() - start
    tokens = -(-height // 32) * 2 * -(-width // 32) * 2
    return dict(seconds=seconds, peak_rss_mb=peak_rss_mb(), exports_built=export_cache.stats["built"],
                backend=predictor.backend, tokens=tokens, attention_chunk_size=DEFAULT_ATTENTION_CHUNK,
                decoder_tile_size=DEFAULT_DECODER_TILE)


def parse_resolution(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--resolution must be WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if width <= 0 or height <= 0 or width % 4 or height % 4:
        raise UserError(f"--resolution sides must be positive multiples of 4, got {text}")
    return width, height


def configurations(args):
    """[(name, model_type, backbone, (w, h), backbone_scale, sample_pixels)] from --preset or the flags."""
    if args.preset:
        return [(name, *PRESETS[name]) for name in args.preset]
    size = parse_resolution(args.resolution)
    if args.model_type == "vitmatte":
        if size[0] % 32 or size[1] % 32:
            raise UserError(f"ViTMatte sizes must be multiples of 32, got {args.resolution}")
        return [(f"vitmatte-s-{args.resolution}", "vitmatte", "vit-s", size, None, None)]
    return [(f"{args.model_backbone}-{args.resolution}", "mattingrefine", args.model_backbone, size,
             args.backbone_scale, args.sample_pixels)]


# --------------------------------------------------------------------------------------------- the worker processes

def torch_reference(model_type, backbone, scale, sample_pixels):
    """The official PyTorch model with random weights (eval mode); the BGMv2 error channel ≈ 0.5."""
    import torch

    torch.manual_seed(0)
    if model_type == "vitmatte":
        from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting

        spec = VITMATTE_S
        backbone_config = VitDetConfig(
            num_channels=4, patch_size=16, image_size=spec["image_size"],
            pretrain_image_size=spec["pretrain_image_size"], hidden_size=spec["hidden_size"],
            num_attention_heads=spec["num_attention_heads"], num_hidden_layers=spec["num_hidden_layers"],
            use_absolute_position_embeddings=True, use_relative_position_embeddings=True,
            window_size=spec["window_size"], window_block_indices=spec["window_block_indices"],
            residual_block_indices=spec["residual_block_indices"], out_features=[f"stage{spec['num_hidden_layers']}"])
        config = VitMatteConfig(backbone_config=backbone_config, hidden_size=spec["hidden_size"],
                                convstream_hidden_sizes=spec["convstream"], fusion_hidden_sizes=spec["fusion"])
        return VitMatteForImageMatting(config).eval()
    from bgmatting.pipeline.whole_process import full_workload_reference

    return full_workload_reference(backbone, scale, sample_pixels)


def inputs_for(model_type, size):
    """Random inputs at (w, h): BGMv2 (src, bgr) (1, 3, H, W) in [0, 1]; ViTMatte pixel_values (1, 4, H, W)."""
    import numpy as np

    width, height = size
    rng = np.random.default_rng(0)
    if model_type == "vitmatte":
        image = rng.uniform(-1, 1, (1, 3, height, width)).astype(np.float32)
        trimap = rng.choice(np.array([0.0, 128 / 255, 1.0], np.float32), (1, 1, height, width))
        return [np.concatenate([image, trimap], axis=1)]
    src = rng.random((1, 3, height, width), dtype=np.float32)
    return [src, np.clip(src + 0.2 * rng.random(src.shape, dtype=np.float32) - 0.1, 0, 1).astype(np.float32)]


def count_flops(reference, inputs):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        reference(*inputs)
    return counter.get_total_flops()


def matmul_gflops(threads):
    """fp32 matmul throughput of torch (MKL) with ``threads`` threads: best of 5 runs of 2048³."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 2048 ** 3 / best / 1e9


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def our_model(model_type, arrays, backbone, scale, sample_pixels):
    """Our Paddle model (eval mode) with the reference's weights (``arrays``: its state dict as numpy),
    converted as the checkpoint converter does."""
    import numpy as np

    if model_type == "vitmatte":
        from bgmatting.convert.vitmatte import convert_vitmatte, infer_vitmatte_config
        from bgmatting.models import ViTMatte

        state, _ = convert_vitmatte(arrays)
        model = ViTMatte(**infer_vitmatte_config(state))
    else:
        from bgmatting.convert.bgmv2 import rename_torch_keys
        from bgmatting.models import MattingRefine

        state = rename_torch_keys(arrays)
        model = MattingRefine(backbone, backbone_scale=scale, refine_sample_pixels=sample_pixels)
    model.set_state_dict({k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in state.items()})
    model.eval()
    return model


def resolve_backend(backend, model_type):
    """``auto`` → the runtime the Predictor picks by default for ``model_type``; other names unchanged."""
    if backend != "auto":
        return backend
    from bgmatting.engine.kinds import get_kind
    from bgmatting.engine.predictor import default_backend

    return default_backend(get_kind(model_type))


def our_runner(backend, model, model_type, backbone, size, threads, workdir):
    """A function running our model on numpy inputs with ``backend`` (exported at the fixed input size)."""
    import paddle

    if backend == "dygraph":
        paddle.base.core.set_num_threads(threads)

        def run(*arrays):
            with paddle.no_grad():
                out = model(*[paddle.to_tensor(a) for a in arrays])
            return [t.numpy() for t in (out if isinstance(out, (list, tuple)) else [out])]

        return run
    from bgmatting.engine.backends import open_runtime
    from bgmatting.engine.exporting import export_kind

    directory = os.path.join(workdir, f"export-{backend}")
    export_kind(model, model_type, directory, {"backbone": backbone},
                input_size=(size[1], size[0]), onnx=backend == "onnx")  # fixed size, as for a video
    return open_runtime(backend, directory, cpu_threads=threads)


def digest(arrays) -> str:
    """sha256 over arrays (in order): lets the test check that both sides ran the same inputs and weights."""
    import hashlib

    hasher = hashlib.sha256()
    for array in arrays:
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:16]


def worker(side, spec):
    """One side of the benchmark (``--worker``): set up, print ``ready`` with facts, then one timed forward per
    ``run`` line on stdin until ``quit``. Replies are JSON lines on the original stdout (fd 1 goes to stderr so that
    library prints cannot mix into them)."""
    reply_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import numpy as np

    def reply(**message):
        reply_stream.write(json.dumps(message) + "\n")
        reply_stream.flush()

    workdir, threads = spec["workdir"], spec["threads"]
    size = tuple(spec["size"])
    facts = {"pid": os.getpid()}
    if side == "torch":
        import torch

        torch.set_num_threads(threads)
        reference = torch_reference(spec["model_type"], spec["backbone"], spec["scale"], spec["sample_pixels"])
        inputs = inputs_for(spec["model_type"], size)
        np.savez(os.path.join(workdir, "inputs.npz"), *inputs)
        np.savez(os.path.join(workdir, "weights.npz"),
                 **{k: v.detach().numpy() for k, v in reference.state_dict().items()})
        torch_inputs = [torch.from_numpy(a) for a in inputs]
        state = reference.state_dict()
        facts.update(inputs_digest=digest(inputs), weights_digest=digest(state[k].numpy() for k in sorted(state)))
        facts.update(flops=count_flops(reference, torch_inputs), matmul_gflops=matmul_gflops(threads),
                     version=torch.__version__)

        def run():
            with torch.inference_mode():
                reference(*torch_inputs)
    else:
        import paddle

        with np.load(os.path.join(workdir, "weights.npz")) as f:
            arrays = {k: f[k] for k in f.files}
        with np.load(os.path.join(workdir, "inputs.npz")) as f:
            inputs = [f[f"arr_{i}"] for i in range(len(f.files))]
        backend = resolve_backend(spec["backend"], spec["model_type"])
        model = our_model(spec["model_type"], arrays, spec["backbone"], spec["scale"], spec["sample_pixels"])
        runner = our_runner(backend, model, spec["model_type"], spec["backbone"], size, threads, workdir)
        facts.update(backend=backend, version=paddle.__version__, inputs_digest=digest(inputs),
                     weights_digest=digest(arrays[k] for k in sorted(arrays)))

        def run():
            runner(*inputs)

        def profile(runs):
            from bgmatting.engine.runtime_profile import profile_export

            return profile_export(backend, os.path.join(workdir, f"export-{backend}"), inputs, threads, runs)
    reply(status="ready", **facts)
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["run"]:
            reply(status="done", seconds=_timed(run))
        elif command[:1] == ["profile"] and side == "ours":
            reply(status="profile", table=profile(int(command[1])))
        else:
            break


# ------------------------------------------------------------------------------------------------ the coordinator

class Worker:
    """A benchmark side in its own process (this script with ``--worker``)."""

    def __init__(self, side, spec, log_dir, role=None):
        self.side = side
        env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
        self.log_path = os.path.join(log_dir, f"{side}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", role or side,
                                         "--spec", json.dumps(spec)], cwd=ROOT, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.facts = self._receive("ready")

    def _receive(self, status):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.flush()
            with open(self.log_path) as f:
                tail = f.read().strip().splitlines()[-15:]
            raise RuntimeError(f"the {self.side} worker failed (exit {self.process.returncode}):\n" + "\n".join(tail))
        message = json.loads(line)
        assert message["status"] == status, message
        return message

    def resident(self):
        with open(f"/proc/{self.process.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def run(self):
        """One forward in the worker: (seconds it measured, peak RSS growth in MB sampled from here)."""
        base = peak = self.resident()
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        done = threading.Event()

        def poll():
            nonlocal peak
            while not done.is_set():
                try:
                    peak = max(peak, self.resident())
                except OSError:
                    return
                done.wait(0.005)

        sampler = threading.Thread(target=poll, daemon=True)
        sampler.start()
        try:
            message = self._receive("done")
        finally:
            done.set()
            sampler.join()
        return message["seconds"], (peak - base) / 2 ** 20

    def profile(self, runs):
        """The op-type table of this worker's runtime (see bgmatting.engine.runtime_profile.profile_export)."""
        self.process.stdin.write(f"profile {runs}\n")
        self.process.stdin.flush()
        return self._receive("profile")["table"]

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.log.close()


def benchmark(config, args):
    """Time one configuration; returns the result dict (see :func:`describe`)."""
    import statistics

    name, model_type, backbone, size, scale, sample_pixels = config
    with tempfile.TemporaryDirectory(prefix="bgmatting-bench-") as workdir:
        spec = dict(model_type=model_type, backbone=backbone, size=list(size), scale=scale,
                    sample_pixels=sample_pixels, threads=args.threads, backend=args.backend, workdir=workdir)
        workers = {}
        try:
            workers["torch"] = Worker("torch", spec, workdir)  # first: writes weights and inputs, measures the floor
            reference_facts = workers["torch"].facts
            if not args.compare_torch:
                workers.pop("torch").close()
            workers["ours"] = Worker("ours", spec, workdir)
            order = ["ours"]
            if args.compare_backend:  # another of our runtimes, in a third process
                workers["other"] = Worker("other", dict(spec, backend=args.compare_backend), workdir, role="ours")
                order.append("other")
            if args.compare_torch:
                order.append("torch")
            times = {side: [] for side in order}
            peaks = {side: 0.0 for side in order}
            turns = []
            for i in range(args.warmup + args.repeats):
                for side in order:  # alternate: contention hits both sides alike
                    time.sleep(PAUSE_SECONDS)
                    seconds, growth = workers[side].run()
                    turns.append(side)
                    peaks[side] = max(peaks[side], growth)
                    if i >= args.warmup:
                        times[side].append(seconds * 1000)
            profiles = {side: workers[side].profile(args.profile) for side in order
                        if args.profile and side != "torch" and workers[side].facts["backend"] in ("inference", "onnx")}
            pids = {side: w.facts["pid"] for side, w in workers.items()}
            digests = {side: (w.facts["inputs_digest"], w.facts["weights_digest"]) for side, w in workers.items()}
            backend = workers["ours"].facts["backend"]
            other_backend = workers["other"].facts["backend"] if "other" in workers else None
        finally:
            for w in workers.values():
                w.close()
    flops, gflops = reference_facts["flops"], reference_facts["matmul_gflops"]
    result = dict(name=name, backend=backend, threads=args.threads, resolution=f"{size[0]}x{size[1]}",
                  gflop=flops / 1e9, matmul_gflops=gflops, floor_ms=flops / (gflops * 1e9) * 1000, pids=pids,
                  coordinator_pid=os.getpid(), turns=turns, digests=digests,
                  profiles={profile["backend"]: profile for profile in profiles.values()})
    for side, values in times.items():
        result[side] = dict(median=float(statistics.median(values)), min=min(values), max=max(values),
                            rss_mb=peaks[side], runs=values)
    result["ours_per_floor"] = result["ours"]["median"] / result["floor_ms"]
    if "torch" in result:
        result["ratio"] = result["ours"]["median"] / result["torch"]["median"]
        result["torch_per_floor"] = result["torch"]["median"] / result["floor_ms"]
    if "other" in result:
        result["other"]["backend"] = other_backend
        result["ratio_other"] = result["ours"]["median"] / result["other"]["median"]
    return result


def describe(result):
    line = (f"{result['name']} {result['resolution']} backend={result['backend']} threads={result['threads']}: "
            f"ours median {result['ours']['median']:.0f} ms (min {result['ours']['min']:.0f}, max "
            f"{result['ours']['max']:.0f}), peak RSS +{result['ours']['rss_mb']:.0f} MB")
    if "torch" in result:
        line += (f" | torch median {result['torch']['median']:.0f} ms (min {result['torch']['min']:.0f}, max "
                 f"{result['torch']['max']:.0f}), peak RSS +{result['torch']['rss_mb']:.0f} MB"
                 f" | ratio ours/torch {result['ratio']:.2f}")
    if "other" in result:
        other = result["other"]
        line += (f" | {other['backend']} median {other['median']:.0f} ms (min {other['min']:.0f}, max {other['max']:.0f})"
                 f" | ratio {result['backend']}/{other['backend']} {result['ratio_other']:.2f}")
    line += (f" | {result['gflop']:.1f} GFLOP, floor {result['floor_ms']:.0f} ms at {result['matmul_gflops']:.0f} "
             f"GFLOP/s (ours = {result['ours_per_floor']:.1f}x floor"
             + (f", torch = {result['torch_per_floor']:.1f}x floor)" if "torch" in result else ")"))
    return line


def profile_table(profile, top: int = 15):
    """Markdown table of the ``top`` op types of one runtime profile (ms per run, share, calls per run)."""
    rows = [f"{profile['backend']}: {profile['total_ms']:.0f} ms of ops per run over {profile['runs']} runs "
            f"({profile['note']})", "", "| op | ms per run | share | calls per run |", "|---|---|---|---|"]
    rows += [f"| {r['op']} | {r['ms']:.1f} | {100 * r['share']:.1f} % | {r['calls']:.0f} |" for r in profile["rows"][:top]]
    return "\n".join(rows)


def markdown(results):
    def cell(side, r):
        return f"{r[side]['median']:.0f} ({r[side]['min']:.0f}–{r[side]['max']:.0f})" if side in r else "–"

    def number(value, digits=2):
        return "–" if value is None else f"{value:.{digits}f}"

    rows = ["| config | resolution | backend | threads | ours median (min–max) ms | second runtime median (min–max) ms "
            "| torch median (min–max) ms | ours/torch | second/torch | ours/second | GFLOP | floor ms | ours/floor "
            "| torch/floor | peak RSS ours / torch MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        second = f"{r['other']['backend']}: {cell('other', r)}" if "other" in r else "–"
        second_torch = r["other"]["median"] / r["torch"]["median"] if "other" in r and "torch" in r else None
        rows.append(f"| {r['name']} | {r['resolution']} | {r['backend']} | {r['threads']} | {cell('ours', r)} | "
                    f"{second} | {cell('torch', r)} | {number(r.get('ratio'))} | {number(second_torch)} | "
                    f"{number(r.get('ratio_other'))} | {r['gflop']:.1f} | {r['floor_ms']:.0f} | "
                    f"{r['ours_per_floor']:.1f} | {number(r.get('torch_per_floor'), 1)} | "
                    f"{r['ours']['rss_mb']:.0f} / {number(r['torch']['rss_mb'] if 'torch' in r else None, 0)} |")
    floors = ", ".join(f"{r['matmul_gflops']:.0f}" for r in results)
    return "\n".join(rows + [f"\nmatmul floor: {floors} GFLOP/s (torch fp32 2048², best of 5, measured per "
                             "configuration); each side in its own process, turns alternating"])


# flags of the kernel timing that --whole-process has no use for (refused when given)
KERNEL_ONLY_FLAGS = ("--preset", "--model-type", "--compare-torch", "--compare-backend", "--warmup", "--markdown",
                     "--vitmatte-memory")
WHOLE_PROCESS_FLAGS = ("--official-repo", "--frames", "--work-dir")


def given_flags(argv) -> set:
    """The ``--flags`` on the command line (``--flag=value`` counted as ``--flag``)."""
    return {word.split("=")[0] for word in (sys.argv[1:] if argv is None else argv) if word.startswith("--")}


def whole_process(args, argv):
    """``--whole-process``: predict.py against the official script (:mod:`bgmatting.pipeline.whole_process`)."""
    from bgmatting.data.io import atomic_path
    from bgmatting.pipeline.whole_process import WholeProcessCase, check_official_repo, compare, describe

    given = given_flags(argv)
    refused = [flag for flag in KERNEL_ONLY_FLAGS if flag in given]
    if refused:
        raise UserError(f"--whole-process runs predict.py against the official script: {refused[0]} does not apply")
    frames = args.frames if args.frames is not None else (16 if args.whole_process == "images" else 300)
    if frames < 1 or args.threads < 1 or args.repeats < 1:
        raise UserError(f"--frames, --threads and --repeats must be >= 1, got {frames}, {args.threads}, "
                        f"{args.repeats}")
    case = WholeProcessCase(args.whole_process, frames, parse_resolution(args.resolution), args.model_backbone,
                            args.threads, args.repeats, backbone_scale=args.backbone_scale,
                            sample_pixels=args.sample_pixels, backend=args.backend if "--backend" in given else None)
    check_official_repo(args.official_repo, case.mode)  # before any work
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    result = compare(case, args.official_repo, os.path.join(ROOT, "predict.py"), work_dir=args.work_dir,
                     log=lambda line: print(line, flush=True))
    print(describe(result))
    if args.json:
        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(result, f, indent=2)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.worker == "vitmatte":
        return print(json.dumps(vitmatte_runtime_worker(json.loads(args.spec))))
    if args.worker:
        return worker(args.worker, json.loads(args.spec))
    if args.whole_process:
        return whole_process(args, argv)
    stray = [flag for flag in WHOLE_PROCESS_FLAGS if flag in given_flags(argv)]
    if stray:
        raise UserError(f"{stray[0]} belongs to --whole-process images|video, which was not given")
    memory_sizes = [MEMORY_PRESETS[p] for p in args.preset or () if p in MEMORY_PRESETS]
    if args.vitmatte_memory or memory_sizes:
        if args.preset and len(memory_sizes) != len(args.preset):
            raise UserError(f"--preset {' '.join(MEMORY_PRESETS)} times ViTMatte alone (as --vitmatte-memory); "
                            "give the other presets in another run")
        return vitmatte_memory([*(args.vitmatte_memory or ()), *memory_sizes], args.backend, args.threads)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.profile < 0:
        raise UserError("--threads and --repeats must be >= 1, --warmup and --profile >= 0")
    configs = configurations(args)
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for config in configs:
        result = benchmark(config, args)
        print(describe(result), flush=True)
        for profile in result["profiles"].values():
            print(f"\nop profile, {result['name']}, " + profile_table(profile) + "\n", flush=True)
        results.append(result)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.markdown:
        print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
