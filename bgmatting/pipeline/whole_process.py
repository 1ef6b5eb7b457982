"""Whole-process speed: ``predict.py`` with its default flags against the official BackgroundMattingV2 scripts
(``inference_images.py`` / ``inference_video.py --device cpu``) on the same files, every run a process of its own.

What :func:`compare` does (``tools/benchmark.py --whole-process images|video --official-repo DIR``):

- writes the inputs into a work folder: ``frames`` synthetic frames (a procedural person over a procedural
  background, shifted a few pixels per frame, seeded) and their clean plate — as PNG folders ``src/`` + ``bgr/``
  (one plate copy per frame: the official script pairs folders one to one) for images, or as an H.264 ``src.mp4``
  + ``bgr.png`` for video;
- writes one official-format checkpoint: the state dict of the official ``MattingRefine`` (the PyPI package
  BackgroundMattingV2) with seeded random weights, the decoder's error channel ≈ 0.5 so that sampling refines all
  ``sample_pixels / 16`` patches on both sides (the official settings' full workload), made by a torch process
  (this one imports neither framework);
- runs the two sides in turn — ours, official, ours, official … (``repeats`` + 1 rounds) — each as a fresh process
  with ``OMP_NUM_THREADS = MKL_NUM_THREADS = threads``, timing each from start to exit. Ours' first run finds an
  empty export cache (a fresh ``BGMATTING_EXPORT_CACHE`` per call) and is reported apart as *cold*; the later ones
  are *warm*. Ours gets only ``--model-checkpoint --src --bgr --output-dir --output-types com pha fgr`` (plus
  ``--backend`` / ``--cpu-threads`` / model options only where the caller asks for something predict.py does not do
  by default — recorded in ``commands``); the official script gets its documented flags;
- checks that every frame has every output type on both sides and compares the alphas of the last runs: mean
  ``|ours − official|`` in 1/255 over all frames (the official writes ``pha`` as JPEG, or mp4v video).

Example:
    >>> case = WholeProcessCase("images", frames=16, size=(1920, 1080), backbone="mobilenetv2", threads=2, repeats=2)
    >>> result = compare(case, "BackgroundMattingV2", "predict.py")  # a checkout of the official repository
    >>> print(describe(result))
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from bgmatting.data.io import atomic_path, read_alpha, to_uint8, write_image
from bgmatting.errors import UserError

OUTPUT_TYPES = ("com", "pha", "fgr")
OFFICIAL_SCRIPTS = {"images": "inference_images.py", "video": "inference_video.py"}
OFFICIAL_URL = "https://github.com/PeterL1n/BackgroundMattingV2"
PREDICT_DEFAULTS = dict(backbone_scale=0.25, sample_pixels=80_000)  # predict.py's (and the official's) defaults
SIDES = ("ours", "official")
CHECKPOINT_CODE = ("import sys; from bgmatting.pipeline.whole_process import save_official_checkpoint as save; "
                   "save(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))")


@dataclass
class WholeProcessCase:
    """One comparison.

    Attributes:
        mode: ``"images"`` (a folder of frames) or ``"video"`` (one clip). frames: how many. size: (W, H).
        backbone: an official backbone (resnet101, resnet50, mobilenetv2). backbone_scale, sample_pixels: the
            MattingRefine options (sampling mode), given to both sides.
        threads: OMP/MKL threads of every process. repeats: warm rounds after the first (cold) one.
        backend: ours' ``--backend`` (None: predict.py's default). seed: of the inputs and the weights.
    """

    mode: str
    frames: int
    size: tuple
    backbone: str
    threads: int
    repeats: int
    backbone_scale: float = 0.25
    sample_pixels: int = 80_000
    backend: Optional[str] = None
    seed: int = 0


# ------------------------------------------------------------------------------------------------------ the inputs

def full_workload_reference(backbone: str, backbone_scale: float, sample_pixels: int, seed: int = 0):
    """The official torch ``MattingRefine`` (sampling mode, eval) with seeded random weights and the decoder's error
    channel ≈ 0.5 everywhere, so that sampling refines all ``sample_pixels // 16`` patches."""
    import torch
    from BackgroundMattingV2.model import MattingRefine

    torch.manual_seed(seed)
    model = MattingRefine(backbone, backbone_scale=backbone_scale, refine_mode="sampling",
                          refine_sample_pixels=sample_pixels)
    with torch.no_grad():
        model.decoder.conv4.weight[4].mul_(0.01)
        model.decoder.conv4.bias[4] = 0.5
    return model.eval()


def save_official_checkpoint(path, backbone: str, backbone_scale: float, sample_pixels: int, seed: int = 0):
    """Write :func:`full_workload_reference`'s state dict with ``torch.save`` (an official-format ``.pth``)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(full_workload_reference(backbone, backbone_scale, sample_pixels, seed).state_dict(), tmp)


def synthetic_frames(frames: int, size, seed: int = 0):
    """``(plate, frame iterator)``: uint8 (H, W, 3) RGB; a procedural foreground over ``plate``, shifted 4 px right
    per frame (wrapping around). Frames are made one at a time (300 HD frames would not fit in memory at once)."""
    from bgmatting.data.synthetic import composite, make_background, make_foreground

    width, height = size
    rng = np.random.default_rng(seed)
    plate = make_background((height, width), rng)
    fgr, pha = make_foreground((height, width), rng)
    shots = (to_uint8(composite(np.roll(fgr, 4 * i, axis=1), np.roll(pha, 4 * i, axis=1), plate))
             for i in range(frames))
    return to_uint8(plate), shots


def write_inputs(folder: Path, case: WholeProcessCase) -> dict:
    """Write the case's inputs under ``folder``: ``{"src": path, "bgr": path, "names": [frame names]}``."""
    from bgmatting.data.video import VideoEncoder

    plate, shots = synthetic_frames(case.frames, case.size, case.seed)
    if case.mode == "images":
        names = [f"frame_{i:04d}" for i in range(case.frames)]
        for name, shot in zip(names, shots):
            write_image(folder / "src" / f"{name}.png", shot)
            write_image(folder / "bgr" / f"{name}.png", plate)
        return dict(src=str(folder / "src"), bgr=str(folder / "bgr"), names=names)
    write_image(folder / "bgr.png", plate)
    with VideoEncoder(folder / "src.mp4", "mp4", plate.shape[:2], fps=25.0) as video:
        for shot in shots:
            video.write(shot)
    names = [f"{i:05d}" for i in range(case.frames)]  # predict.py's and the official's names of video frames
    return dict(src=str(folder / "src.mp4"), bgr=str(folder / "bgr.png"), names=names)


# ------------------------------------------------------------------------------------------------------ the commands

def check_official_repo(path, mode: str) -> Path:
    """The official checkout ``path`` as an absolute Path, or UserError when it lacks the script ``mode`` needs."""
    if not path:
        raise UserError(f"--whole-process needs --official-repo DIR: a checkout of {OFFICIAL_URL} "
                        f"(its {OFFICIAL_SCRIPTS[mode]} is the other side; it is not shipped with bgmatting)")
    repo = Path(path).resolve()
    if not (repo / OFFICIAL_SCRIPTS[mode]).is_file():
        raise UserError(f"--official-repo {path}: no {OFFICIAL_SCRIPTS[mode]} there (expected a checkout of "
                        f"{OFFICIAL_URL})")
    return repo


def our_command(case: WholeProcessCase, predict_script, inputs: dict, checkpoint, output) -> list:
    """predict.py's argv: the default flags, plus only what the case asks beyond predict.py's defaults."""
    argv = [sys.executable, str(predict_script), "--model-checkpoint", str(checkpoint), "--src", inputs["src"],
            "--bgr", inputs["bgr"], "--output-dir", str(output), "--output-types", *OUTPUT_TYPES]
    if case.backend:
        argv += ["--backend", case.backend]
    if case.threads != len(os.sched_getaffinity(0)):  # predict.py's runtimes default to every CPU of the process
        argv += ["--cpu-threads", str(case.threads)]
    if case.backbone_scale != PREDICT_DEFAULTS["backbone_scale"]:
        argv += ["--model-backbone-scale", str(case.backbone_scale)]
    if case.sample_pixels != PREDICT_DEFAULTS["sample_pixels"]:
        argv += ["--model-refine-sample-pixels", str(case.sample_pixels)]
    return argv


def official_command(case: WholeProcessCase, repo: Path, inputs: dict, checkpoint, output) -> list:
    """The official script's argv, as its docstring shows it (``--device cpu``, sampling refinement)."""
    inputs_flags = (["--images-src", inputs["src"], "--images-bgr", inputs["bgr"]] if case.mode == "images"
                    else ["--video-src", inputs["src"], "--video-bgr", inputs["bgr"]])
    return [sys.executable, str(repo / OFFICIAL_SCRIPTS[case.mode]), "--device", "cpu", "--model-type",
            "mattingrefine", "--model-backbone", case.backbone, "--model-backbone-scale", str(case.backbone_scale),
            "--model-refine-mode", "sampling", "--model-refine-sample-pixels", str(case.sample_pixels),
            "--model-checkpoint", str(checkpoint), *inputs_flags, "--output-dir", str(output),
            "--output-types", *OUTPUT_TYPES]


def run_process(argv: list, cwd, env: dict, log_path: Path) -> dict:
    """Run ``argv`` to its end (stdin closed, output to ``log_path``): ``{"pid", "seconds", "returncode",
    "started", "ended"}`` (the last two: wall-clock epoch seconds)."""
    with open(log_path, "w") as log:
        started = time.time()
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
        returncode = process.wait()
        seconds = time.perf_counter() - start
    return dict(pid=process.pid, seconds=seconds, returncode=returncode, started=started, ended=time.time())


def _tail(log_path: Path, lines: int = 3) -> str:
    text = log_path.read_text(errors="replace").replace("\r", "\n")
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


# ------------------------------------------------------------------------------------------------------ the outputs

def output_kinds(mode: str, folder: Path, names: list, side: str) -> dict:
    """``{type: extension}`` of a run's outputs; UserError when a type or a frame's output is missing."""
    kinds = {}
    for kind in OUTPUT_TYPES:
        if mode == "video":
            found = sorted(folder.glob(f"{kind}.*"))
            if not found:
                raise UserError(f"{side}: no {kind} video in {folder}")
            kinds[kind] = found[0].suffix.lstrip(".")
            continue
        files = {path.stem: path.suffix.lstrip(".") for path in (folder / kind).glob("*.*")}
        missing = [name for name in names if name not in files]
        if missing:
            raise UserError(f"{side}: no {kind} output for {len(missing)} of {len(names)} frames in {folder / kind} "
                            f"(first: {missing[0]})")
        kinds[kind] = "/".join(sorted({files[name] for name in names}))
    return kinds


def _alphas(mode: str, folder: Path, names: list, extension: str):
    """A run's alphas one by one as float32 (H, W) in [0, 1]: ``pha/NAME.EXT`` files, or the frames of the ``pha``
    video (the mean of its decoded channels)."""
    from bgmatting.data.video import open_source

    if mode == "images":
        return (read_alpha(folder / "pha" / f"{name}.{extension}") for name in names)
    return (frame.mean(axis=2, dtype=np.float32) / 255.0
            for _, frame in open_source(folder / f"pha.{extension}", "pha") if frame is not None)


def alpha_difference(mode: str, ours: Path, official: Path, names: list, kinds: dict) -> dict:
    """Mean ``|ours − official|`` of the alphas in 1/255 over the frames both have (frame by frame, in order):
    ``{"mean_abs_255", "frames", "frames_ours", "frames_official"}``."""
    sides = [_alphas(mode, ours, names, kinds["ours"]["pha"]), _alphas(mode, official, names, kinds["official"]["pha"])]
    total, counts = 0.0, [0, 0]
    while True:
        mine, theirs = (next(side, None) for side in sides)
        counts[0] += mine is not None
        counts[1] += theirs is not None
        if mine is None or theirs is None:
            break
        total += float(np.abs(mine - theirs).mean())
    counts = [count + sum(1 for _ in side) for count, side in zip(counts, sides)]  # the longer side's rest
    frames = min(counts)
    if frames == 0:
        raise UserError(f"no alpha frame to compare (ours {counts[0]}, official {counts[1]})")
    return dict(mean_abs_255=total / frames * 255.0, frames=frames, frames_ours=counts[0], frames_official=counts[1])


MODEL_BUSY = re.compile(r"model busy (\d+)%")


def _model_busy(log_path: Path):
    """The share predict.py reports for a video (``model busy 97% of …``) in [0, 1], or None."""
    match = MODEL_BUSY.search(log_path.read_text(errors="replace"))
    return int(match.group(1)) / 100 if match else None


def _export_runtimes(cache: Path) -> list:
    """The runtimes ours exported for (``key.runtime`` of the cache entries): empty for dygraph."""
    return sorted({json.loads(path.read_text())["key"]["runtime"] for path in cache.glob("*/cache.json")})


# ----------------------------------------------------------------------------------------------------- the driver

def _stats(values: list) -> dict:
    return dict(median=float(statistics.median(values)), min=min(values), max=max(values), runs=values)


def compare(case: WholeProcessCase, official_repo, predict_script, work_dir=None, log=print) -> dict:
    """Run the comparison (see the module docstring); returns the result dict (:func:`describe` prints it).

    Args:
        case: what to run. official_repo: a checkout of the official repository. predict_script: our
            ``predict.py`` (run from its folder, as a user of the clone runs it). work_dir: keep the inputs,
            checkpoint, outputs and logs there (default: a temporary folder, removed). log: progress lines.
    Raises:
        UserError: a missing official script, a failed run (its last lines named), missing outputs.
    """
    repo = check_official_repo(official_repo, case.mode)
    width, height = case.size
    patches = (height // 4) * (width // 4)
    if patches < case.sample_pixels // 16:  # the official sampling would ask torch.topk for more than there are
        raise UserError(f"the official refiner cannot pick --sample-pixels {case.sample_pixels} // 16 = "
                        f"{case.sample_pixels // 16} patches of a {width}x{height} frame, which has {patches}; lower "
                        "--sample-pixels or raise --resolution")
    predict_script = Path(predict_script).resolve()
    temporary = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="bgmatting-whole-")) if temporary else Path(work_dir).resolve()
    try:
        work.mkdir(parents=True, exist_ok=True)
        if any(work.iterdir()):
            raise UserError(f"--work-dir {work_dir} is not empty")
        return _compare(case, repo, predict_script, work, log, kept=not temporary)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def _compare(case, repo, predict_script, work, log, kept):
    root = predict_script.parent
    env = dict(os.environ, OMP_NUM_THREADS=str(case.threads), MKL_NUM_THREADS=str(case.threads),
               BGMATTING_EXPORT_CACHE=str(work / "export-cache"))
    (work / "logs").mkdir()
    log(f"writing {case.frames} {case.size[0]}x{case.size[1]} frame(s) ({case.mode}) and the checkpoint in {work}")
    inputs = write_inputs(work / "inputs", case)
    checkpoint = work / f"official_{case.backbone}.pth"
    made = run_process([sys.executable, "-c", CHECKPOINT_CODE, str(checkpoint), case.backbone,
                        str(case.backbone_scale), str(case.sample_pixels), str(case.seed)], root, env,
                       work / "logs" / "checkpoint.log")
    if made["returncode"]:
        raise UserError(f"making the official checkpoint failed: {_tail(work / 'logs' / 'checkpoint.log')}")
    runs = []
    for round_index in range(case.repeats + 1):
        for side in SIDES:
            label = f"{round_index}-{side}"
            output = work / "outputs" / label
            argv = (our_command(case, predict_script, inputs, checkpoint, output) if side == "ours"
                    else official_command(case, repo, inputs, checkpoint, output))
            log_path = work / "logs" / f"{label}.log"
            record = run_process(argv, root if side == "ours" else repo, env, log_path)
            if record["returncode"]:
                where = f"log: {log_path}" if kept else "rerun with --work-dir DIR to keep its log"
                raise UserError(f"{side} run {round_index + 1} failed with exit {record['returncode']} ({where}): "
                                f"{_tail(log_path)}")
            record.update(side=side, round=round_index, cold=side == "ours" and round_index == 0, argv=argv,
                          output=str(output), kinds=output_kinds(case.mode, output, inputs["names"], side))
            if side == "ours" and case.mode == "video":
                record["model_busy"] = _model_busy(log_path)
            log(f"  {label}: {record['seconds']:.1f} s (pid {record['pid']})")
            runs.append(record)
    return summarise(case, inputs, checkpoint, runs, _export_runtimes(work / "export-cache"))


def summarise(case: WholeProcessCase, inputs: dict, checkpoint, runs: list, runtimes: list) -> dict:
    """The result dict from the runs: per side seconds (ours cold / warm), ratios, fps, kinds, alpha agreement."""
    ours_cold = [r["seconds"] for r in runs if r["side"] == "ours" and r["cold"]]
    ours_warm = [r["seconds"] for r in runs if r["side"] == "ours" and not r["cold"]]
    official = [r["seconds"] for r in runs if r["side"] == "official"]
    last = {side: next(r for r in reversed(runs) if r["side"] == side) for side in SIDES}
    kinds = {side: last[side]["kinds"] for side in SIDES}
    result = dict(case=asdict(case), inputs=dict(inputs, checkpoint=str(checkpoint)), runtime=runtimes or ["dygraph"],
                  coordinator_pid=os.getpid(), turns=[r["side"] for r in runs], runs=runs, kinds=kinds,
                  commands={side: last[side]["argv"] for side in SIDES},
                  ours_cold=_stats(ours_cold), ours_warm=_stats(ours_warm), official=_stats(official),
                  load_average=os.getloadavg()[0])
    result["ratio_warm"] = result["ours_warm"]["median"] / result["official"]["median"]
    result["ratio_cold"] = result["ours_cold"]["median"] / result["official"]["median"]
    result["alpha"] = alpha_difference(case.mode, Path(last["ours"]["output"]), Path(last["official"]["output"]),
                                       inputs["names"], kinds)
    if case.mode == "video":
        for key in ("ours_cold", "ours_warm", "official"):
            result[key]["fps"] = case.frames / result[key]["median"]
        busy = [r["model_busy"] for r in runs  # warm runs: a cold run's model time includes the export
                if r["side"] == "ours" and not r["cold"] and r.get("model_busy") is not None]
        result["ours_model_busy"] = _stats(busy) if busy else None
    return result


def describe(result: dict) -> str:
    """A Markdown table of the runs' seconds, the ratios, the output kinds and the alpha agreement."""
    case = result["case"]
    video = case["mode"] == "video"
    title = (f"whole process, {case['frames']} {case['size'][0]}x{case['size'][1]} frame(s) ({case['mode']}), "
             f"{case['backbone']} {case['backbone_scale']:g}/{case['sample_pixels']}, {case['threads']} thread(s), "
             f"ours on {', '.join(result['runtime'])}")
    fps_head, fps_rule = (" fps |", "---|") if video else ("", "")
    rows = [title, "", f"| side | runs | median s | min–max s |{fps_head} ÷ official | outputs |",
            f"|---|---|---|---|{fps_rule}---|---|"]
    for key, name, ratio in (("ours_cold", "ours, first run (export cache cold)", result["ratio_cold"]),
                             ("ours_warm", "ours, later runs", result["ratio_warm"]),
                             ("official", "official " + OFFICIAL_SCRIPTS[case["mode"]], None)):
        stats = result[key]
        kinds = result["kinds"]["official" if key == "official" else "ours"]
        rows.append(f"| {name} | {len(stats['runs'])} | {stats['median']:.1f} | "
                    f"{stats['min']:.1f}–{stats['max']:.1f} |"
                    + (f" {stats['fps']:.2f} |" if video else "")
                    + (f" {ratio:.2f} |" if ratio is not None else " 1 |")
                    + " " + " ".join(f"{k}.{v}" for k, v in kinds.items()) + " |")
    alpha = result["alpha"]
    rows.append(f"\nalpha ours vs official: mean |Δ| {alpha['mean_abs_255']:.2f}/255 over {alpha['frames']} frame(s) "
                f"(ours {alpha['frames_ours']}, official {alpha['frames_official']}); turns "
                f"{' '.join(result['turns'])}; load average {result['load_average']:.1f}")
    if video and result["ours_model_busy"]:
        busy = result["ours_model_busy"]["median"]
        rows.append(f"ours' model busy (later runs): median {100 * busy:.0f}% of the run")
    return "\n".join(rows)
