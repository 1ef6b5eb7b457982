"""Speed of our backends, optionally against the official PyTorch references in the same run.

Example:
    python tools/benchmark.py --preset hd-mobilenetv2 --backend inference --threads 2 --compare-torch
    python tools/benchmark.py --vitmatte-memory 1024x1024 2048x2048 3840x2160
    python tools/benchmark.py --preset hd-mobilenetv2 hd-resnet50 4k-mobilenetv2 4k-resnet50 vitmatte-s-1024 \
        --backend inference --threads 2 --repeats 5 --compare-torch --markdown
    python tools/benchmark.py --model-type mattingrefine --model-backbone resnet50 --resolution 1920x1080 \
        --backend dygraph --threads 1

Per configuration: median ms/frame after --warmup runs, min and max over --repeats, and the peak RSS growth while
that side ran (sampled every 5 ms). With --compare-torch the PyTorch reference (BackgroundMattingV2's
MattingRefine; transformers' VitMatteForImageMatting) gets the same random weights (converted), the same inputs
and threads; the two sides alternate, and the ratio ours / theirs is printed. The FLOP count is torch's
FlopCounterMode on the reference forward (2 per multiply-add); the floor is FLOPs / the fp32 matmul GFLOP/s
measured on this machine with the same threads (a 2048² torch matmul, best of 5).

Weights are random and the decoder's error channel is set to ≈ 0.5 everywhere so that sampling mode refines all
refine_sample_pixels / 16 patches (the official HD/4K settings' full workload) on both sides.
"""
import argparse
import os
import sys
import tempfile
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
VITMATTE_S = dict(hidden_size=384, num_attention_heads=6, num_hidden_layers=12,
                  window_block_indices=[0, 1, 3, 4, 6, 7, 9, 10], residual_block_indices=[2, 5, 8, 11],
                  window_size=14, image_size=512, pretrain_image_size=224, convstream=[48, 96, 192],
                  fusion=[256, 128, 64, 32])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", choices=list(PRESETS), help="the issue's configurations")
    parser.add_argument("--model-type", choices=["mattingrefine", "vitmatte"], default="mattingrefine")
    from bgmatting.models.backbones import BACKBONES

    official = [b.name for b in BACKBONES.values() if b.official]  # those the torch reference has
    parser.add_argument("--model-backbone", choices=official, default="mobilenetv2")
    parser.add_argument("--resolution", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--backbone-scale", type=float, default=0.25)
    parser.add_argument("--sample-pixels", type=int, default=80_000)
    parser.add_argument("--backend", choices=["dygraph", "inference", "onnx"], default="inference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare-torch", action="store_true", help="also time the official PyTorch reference")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table at the end")
    parser.add_argument("--vitmatte-memory", nargs="+", metavar="WIDTHxHEIGHT",
                        help="instead: ViTMatte-S in dygraph with chunked attention and a tiled decoder, one fresh "
                             "process per size, printing time and that process's peak RSS (e.g. 1024x1024 "
                             "2048x2048 3840x2160)")
    return parser.parse_args(argv)


def vitmatte_memory(sizes):
    """Time and peak RSS of bounded-memory ViTMatte-S (random weights) per size, each in its own process."""
    from bgmatting.models.vitmatte.profile import measure_vitmatte_in_subprocess

    for text in sizes:
        width, height = parse_resolution(text)
        r = measure_vitmatte_in_subprocess(size="small", height=height, width=width)
        print(f"vitmatte-s {width}x{height}: {r['tokens']} tokens, chunk {r['attention_chunk_size']}, "
              f"tile {r['decoder_tile_size']}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)


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


class PeakRSS:
    """Samples this process's resident set every 5 ms; ``measure()`` gives the peak growth during a block (MB)."""

    def __init__(self):
        self.peak = 0
        self.base = self.current()
        threading.Thread(target=self._poll, daemon=True).start()

    @staticmethod
    def current():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self):
        while True:
            self.peak = max(self.peak, self.current())
            time.sleep(0.005)

    def start(self):
        self.base = self.current()
        self.peak = self.base

    def growth_mb(self):
        return (self.peak - self.base) / 2 ** 20


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
    from BackgroundMattingV2.model import MattingRefine

    model = MattingRefine(backbone, backbone_scale=scale, refine_mode="sampling", refine_sample_pixels=sample_pixels)
    with torch.no_grad():
        model.decoder.conv4.weight[4].mul_(0.01)
        model.decoder.conv4.bias[4] = 0.5
    return model.eval()


def our_model(model_type, reference, backbone, scale, sample_pixels):
    """Our Paddle model (eval mode) with the reference's weights, converted as the checkpoint converter does."""
    import numpy as np

    arrays = {k: v.detach().numpy().copy() for k, v in reference.state_dict().items()}
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


def our_runner(backend, model, model_type, backbone, size, threads, workdir):
    """A no-argument-per-call function running our model on numpy inputs with ``backend``."""
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

    directory = os.path.join(workdir, "export")
    export_kind(model, model_type, directory, {"backbone": backbone},
                 input_size=(size[1], size[0]), onnx=backend == "onnx")  # fixed size, as for a video
    return open_runtime(backend, directory, cpu_threads=threads)


def time_side(run, inputs, rss):
    rss.start()
    seconds = _timed(lambda: run(*inputs))
    return seconds, rss.growth_mb()


def benchmark(config, args, rss, gflops):
    import numpy as np
    import torch

    name, model_type, backbone, size, scale, sample_pixels = config
    torch.set_num_threads(args.threads)
    reference = torch_reference(model_type, backbone, scale, sample_pixels)
    inputs = inputs_for(model_type, size)
    torch_inputs = [torch.from_numpy(a) for a in inputs]
    flops = count_flops(reference, torch_inputs)
    model = our_model(model_type, reference, backbone, scale, sample_pixels)
    with tempfile.TemporaryDirectory(prefix="bgmatting-bench-") as workdir:
        ours = our_runner(args.backend, model, model_type, backbone, size, args.threads, workdir)

        def theirs(*arrays):
            with torch.inference_mode():
                return reference(*arrays)

        sides = {"ours": (ours, inputs)}
        if args.compare_torch:
            sides["torch"] = (theirs, torch_inputs)
        times = {side: [] for side in sides}
        peaks = {side: 0.0 for side in sides}
        for i in range(args.warmup + args.repeats):
            for side, (run, side_inputs) in sides.items():  # alternate: contention hits both sides alike
                seconds, growth = time_side(run, side_inputs, rss)
                peaks[side] = max(peaks[side], growth)
                if i >= args.warmup:
                    times[side].append(seconds * 1000)
    result = dict(name=name, backend=args.backend, threads=args.threads, resolution=f"{size[0]}x{size[1]}",
                  gflop=flops / 1e9, floor_ms=flops / (gflops * 1e9) * 1000)
    for side, values in times.items():
        result[side] = dict(median=float(np.median(values)), min=min(values), max=max(values), rss_mb=peaks[side])
    if "torch" in result:
        result["ratio"] = result["ours"]["median"] / result["torch"]["median"]
    return result


def describe(result):
    line = (f"{result['name']} {result['resolution']} backend={result['backend']} threads={result['threads']}: "
            f"ours median {result['ours']['median']:.0f} ms (min {result['ours']['min']:.0f}, max "
            f"{result['ours']['max']:.0f}), peak RSS +{result['ours']['rss_mb']:.0f} MB")
    if "torch" in result:
        line += (f" | torch median {result['torch']['median']:.0f} ms (min {result['torch']['min']:.0f}, max "
                 f"{result['torch']['max']:.0f}), peak RSS +{result['torch']['rss_mb']:.0f} MB"
                 f" | ratio ours/torch {result['ratio']:.2f}")
    line += (f" | {result['gflop']:.1f} GFLOP, floor {result['floor_ms']:.0f} ms "
             f"(ours = {result['ours']['median'] / result['floor_ms']:.1f}x floor)")
    return line


def markdown(results, gflops):
    rows = ["| config | resolution | backend | threads | ours median (min–max) ms | torch median (min–max) ms "
            "| ours/torch | GFLOP | floor ms | ours/floor | peak RSS ours / torch MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        torch_cell = (f"{r['torch']['median']:.0f} ({r['torch']['min']:.0f}–{r['torch']['max']:.0f})"
                      if "torch" in r else "–")
        rows.append(f"| {r['name']} | {r['resolution']} | {r['backend']} | {r['threads']} | "
                    f"{r['ours']['median']:.0f} ({r['ours']['min']:.0f}–{r['ours']['max']:.0f}) | {torch_cell} | "
                    f"{r.get('ratio', float('nan')):.2f} | {r['gflop']:.1f} | {r['floor_ms']:.0f} | "
                    f"{r['ours']['median'] / r['floor_ms']:.1f} | {r['ours']['rss_mb']:.0f} / "
                    f"{r['torch']['rss_mb'] if 'torch' in r else float('nan'):.0f} |")
    return "\n".join(rows + [f"\nmatmul floor: {gflops:.0f} GFLOP/s (torch fp32, 2048², best of 5)"])


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.vitmatte_memory:
        return vitmatte_memory(args.vitmatte_memory)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        raise UserError("--threads and --repeats must be >= 1 and --warmup >= 0")
    configs = configurations(args)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from tqdm import tqdm

    rss = PeakRSS()
    gflops = matmul_gflops(args.threads)
    print(f"matmul: {gflops:.0f} GFLOP/s fp32 at {args.threads} thread(s); load average {os.getloadavg()[0]:.1f}")
    results = []
    for config in tqdm(configs, desc="configurations", disable=len(configs) < 2):
        result = benchmark(config, args, rss, gflops)
        print(describe(result), flush=True)
        results.append(result)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.markdown:
        print(markdown(results, gflops))


if __name__ == "__main__":
    main()
