"""Runtimes for exported models (:mod:`bgmatting.export`) behind one interface, and the Predictor backends on them.

- :class:`PaddleInferenceRuntime`: Paddle Inference; CPU with oneDNN and a math-library thread count, or GPU
  (+ TensorRT) when Paddle is a CUDA build.
- :class:`OnnxRuntime`: onnxruntime on ``model.onnx`` (CPU; CUDA when onnxruntime has it).

Both take numpy float32 arrays in the export's input order and return a tuple of numpy arrays in its output
order (``export.json``). :func:`static_backend` turns one into a ``Predictor`` backend: it opens an export
directory, or runs exports of a checkpoint kept in the on-disk export cache (:mod:`bgmatting.engine.export_cache`).
"""
import os
import warnings

import numpy as np

from bgmatting.engine.loading import part_settings
from bgmatting.errors import UserError
from bgmatting.export import MODEL_PREFIX, ONNX_NAME, export_model, load_metadata


def default_threads() -> int:
    """Threads when none are given: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Runtime:
    """Shared input checks and metadata of the runtimes (see :class:`PaddleInferenceRuntime`)."""

    def __init__(self, export_dir):
        self.metadata = load_metadata(export_dir)
        self.export_dir = str(export_dir)
        self.input_names = [spec["name"] for spec in self.metadata["inputs"]]
        self.output_names = list(self.metadata["outputs"])

    def _check(self, inputs):
        if len(inputs) != len(self.input_names):
            raise UserError(f"the exported {self.metadata['model_type']} takes {len(self.input_names)} inputs "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        arrays = []
        for spec, value in zip(self.metadata["inputs"], inputs):
            array = np.ascontiguousarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
            if array.ndim != len(spec["shape"]) or any(s is not None and s != a for s, a in zip(spec["shape"], array.shape)):
                raise UserError(f"input {spec['name']} must have shape {spec['shape']} (None = any), got "
                                f"{list(array.shape)} (a fixed-size export: re-export with another --input-size)")
            arrays.append(array)
        return arrays


class PaddleInferenceRuntime(_Runtime):
    """Paddle Inference on a ``paddle.jit.save`` export.

    Args:
        export_dir: a directory written by :func:`bgmatting.export.export_model`.
        device: ``"cpu"`` or ``"gpu"`` (needs a CUDA build of Paddle).
        cpu_threads: math-library threads on CPU (None = all CPUs of this process).
        onednn: use oneDNN kernels on CPU (3-8x faster than without on this project's models).
        tensorrt: on GPU, run TensorRT subgraphs (FP32). Untested here (no GPU).
    Input:
        ``runtime(*inputs)``: float32 arrays (or tensors) in the export's input order, e.g. BGMv2 ``src``,
        ``bgr`` (B, 3, H, W) in [0, 1]; ViTMatte ``pixel_values`` (B, 4, H, W).
    Output:
        tuple of float32 arrays in the export's output order (``runtime.output_names``).
    Example:
        >>> runtime = PaddleInferenceRuntime("export/mobilenetv2", cpu_threads=2)
        >>> pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = runtime(src, bgr)
    """

    def __init__(self, export_dir, device: str = "cpu", cpu_threads: int = None, onednn: bool = True,
                 tensorrt: bool = False):
        super().__init__(export_dir)
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
        from paddle import inference

        prefix = os.path.join(self.export_dir, MODEL_PREFIX)
        config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        config.disable_glog_info()
        if device == "gpu":
            if not paddle.device.is_compiled_with_cuda():
                raise UserError("device gpu needs a CUDA build of Paddle (this one is CPU-only)")
            config.enable_use_gpu(256, 0)
            if tensorrt:
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                              precision_mode=inference.PrecisionType.Float32,
                                              use_static=False, use_calib_mode=False)
        elif device == "cpu":
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(cpu_threads or default_threads())
            if onednn:
                config.enable_mkldnn()
            else:
                config.disable_mkldnn()
        else:
            raise UserError(f"unknown device {device!r}; choose cpu or gpu")
        self.predictor = inference.create_predictor(config)
        names = self.predictor.get_output_names()
        if len(names) != len(self.output_names):
            raise UserError(f"{self.export_dir}: the program has {len(names)} outputs but export.json lists "
                            f"{len(self.output_names)}")
        self._inputs = [self.predictor.get_input_handle(n) for n in self.predictor.get_input_names()]
        self._outputs = [self.predictor.get_output_handle(n) for n in names]

    def __call__(self, *inputs):
        for handle, array in zip(self._inputs, self._check(inputs)):
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        self.predictor.run()
        return tuple(handle.copy_to_cpu() for handle in self._outputs)


class OnnxRuntime(_Runtime):
    """onnxruntime on the ``model.onnx`` of an export (written with ``--onnx``).

    Args:
        export_dir: export directory holding ``model.onnx``.
        device: ``"cpu"``, or ``"gpu"`` when onnxruntime has the CUDA provider.
        cpu_threads: intra-op threads (None = all CPUs of this process); inter-op runs sequentially.
    Input / Output: as :class:`PaddleInferenceRuntime`.
    Example:
        >>> alpha, = OnnxRuntime("export/vitmatte_s")(pixel_values)
    """

    def __init__(self, export_dir, device: str = "cpu", cpu_threads: int = None):
        super().__init__(export_dir)
        import onnxruntime

        path = os.path.join(self.export_dir, ONNX_NAME)
        if not os.path.isfile(path):
            raise UserError(f"{self.export_dir} has no {ONNX_NAME}; export with --onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # no warnings about unused initialisers of paddle2onnx graphs
        if device == "gpu":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise UserError("device gpu needs onnxruntime-gpu (CUDAExecutionProvider is not available)")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise UserError(f"unknown device {device!r}; choose cpu or gpu")
        self.session = onnxruntime.InferenceSession(path, options, providers=providers)
        self._input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs):
        return tuple(self.session.run(None, dict(zip(self._input_names, self._check(inputs)))))


RUNTIMES = {"inference": PaddleInferenceRuntime, "onnx": OnnxRuntime}


def open_runtime(backend: str, export_dir, device: str = "cpu", cpu_threads: int = None):
    """``"inference"`` or ``"onnx"`` runtime on ``export_dir``; UserError for another name."""
    if backend not in RUNTIMES:
        raise UserError(f"unknown runtime {backend!r}; choose one of {', '.join(RUNTIMES)}")
    return RUNTIMES[backend](export_dir, device=device, cpu_threads=cpu_threads)


class _Array(np.ndarray):
    """A numpy array that also answers ``.numpy()``, so a runtime's outputs read like Paddle tensors."""

    def numpy(self):
        return np.asarray(self)


class StaticModel:
    """A runtime called like the Paddle layer it was exported from: ``model(src, bgr)`` → tuple of arrays (with
    ``.numpy()``), or one array for a single-output model. Lets ``ModelKind.run`` drive every backend."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._pre_hooks = []

    def register_forward_pre_hook(self, hook) -> None:
        """Call ``hook(self, inputs)`` before every run, as a Paddle layer's forward pre-hook (the cascade's trimap
        output reads ViTMatte's input this way)."""
        self._pre_hooks.append(hook)

    def __call__(self, *inputs):
        for hook in self._pre_hooks:
            hook(self, inputs)
        outputs = tuple(np.asarray(o).view(_Array) for o in self.runtime(*inputs))
        return outputs[0] if len(outputs) == 1 else outputs


MAX_FIXED_SIZES = 4  # per Predictor: fixed-size Paddle Inference exports before falling back to a dynamic one


def runtime_available(name: str) -> bool:
    """Whether the ``name`` runtime can run here: ``inference`` needs Paddle (always), ``onnx`` needs onnxruntime
    and paddle2onnx (to convert exports)."""
    if name == "inference":
        return True
    if name == "onnx":
        import importlib.util

        return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "paddle2onnx"))
    return False


def shape_policy(runtime: str, signature, height: int, width: int, fixed_sizes: int):
    """The export's input size for a padded (height, width) input: (H, W) fixed, or None for dynamic sizes.

    - fixed-size kinds (ViTMatte): the padded size itself (its multiple of 32), always — the exact bucket. Padding
      further (to a coarser bucket) changes the alpha inside the image, by up to 0.09 on the tiny test model: the
      absolute position embedding is resized to the token grid, the global blocks' relative-position tables to
      2 x grid - 1, global attention attends to the pad tokens, and border windows, 3x3 convs and x2 upsamplers
      read pad content instead of zeros / the edge. So one export per padded size, each cached on disk: a folder
      of mixed sizes pays one export per distinct multiple-of-32 size, once per machine;
    - BGMv2 on either runtime: fixed — a fixed-size graph is faster (onnxruntime: 228 vs 299 ms for HD
      MobileNetV2, its shapes fold into constants; Paddle Inference under oneDNN: every resize takes the
      integer-ratio form, several times faster), and a video or a folder of same-size photos has one size; after
      :data:`MAX_FIXED_SIZES` different sizes in one Predictor (a folder of varied photos) further sizes share one
      dynamic export.
    ``fixed_sizes`` = fixed-size exports this Predictor already has.
    """
    if signature.fixed_size:
        return (height, width)
    if fixed_sizes >= MAX_FIXED_SIZES:
        return None
    return (height, width)


class CachedExports:
    """The runtimes of one model on one runtime, one per export input size, exports read from (or written to) the
    export cache (:mod:`bgmatting.engine.export_cache`). The dygraph model is built only when an export is missing.

    Args:
        name: ``"inference"`` or ``"onnx"``.
        settings: the model's :class:`~bgmatting.engine.loading.ModelSettings` (weights file, kind, options).
        model: the model in memory (weights hashed from its state dict), or None (the settings' weights file).
        device, cpu_threads: of the runtimes.
        dygraph_model: ``(settings, device, model) -> layer`` building the eager model for an export.
    """

    def __init__(self, name, settings, model, device, cpu_threads, dygraph_model):
        self.name, self.settings, self.model = name, settings, model
        self.device, self.cpu_threads, self.dygraph_model = device, cpu_threads, dygraph_model
        self.runtimes = {}  # input size (tuple or None) -> runtime
        self._weights = None

    def weights_digest(self) -> str:
        from bgmatting.engine import export_cache

        if self._weights is None:
            source = self.settings.source
            if self.model is None and source is not None and source.weights is not None:
                self._weights = "file:" + export_cache.file_digest(source.weights)
            else:  # in memory, or random weights: built once and hashed
                self.model = self.dygraph_model(self.settings, "cpu", self.model)
                self._weights = "state:" + export_cache.state_digest(self.model)
        return self._weights

    def runtime(self, height: int, width: int):
        """The runtime for a padded (height, width) input, exporting into the cache if needed."""
        from bgmatting.engine import export_cache

        signature = self.settings.kind.export
        fixed = sum(size is not None for size in self.runtimes)
        size = (height, width) if (height, width) in self.runtimes else \
            shape_policy(self.name, signature, height, width, fixed)
        if size in self.runtimes:
            return self.runtimes[size]
        fields = export_cache.key_fields(self.weights_digest(), self.settings.kind.name, self.settings.options,
                                         size, self.name)

        def build(folder):
            self.model = self.dygraph_model(self.settings, "cpu", self.model)
            export_model(self.model, signature, self.settings.kind.name, folder, self.settings.options,
                         input_size=size, onnx=self.name == "onnx")

        entry = export_cache.cached_export(fields, build)
        self.runtimes[size] = open_runtime(self.name, entry, self.device, self.cpu_threads)
        return self.runtimes[size]


def _by_shape(runtime_for) -> StaticModel:
    """A StaticModel picking its runtime by the input's padded (H, W): ``runtime_for(height, width)``. The kind's run
    pads (ViTMatte: to 32) before calling, so the export is chosen here."""
    return StaticModel(lambda *inputs: runtime_for(*np.shape(inputs[0])[2:])(*inputs))


def static_backend(name: str, dygraph_model):
    """A Predictor backend running the ``name`` runtime (``"inference"`` / ``"onnx"``).

    The settings' source may be an export folder (used as is; :mod:`bgmatting.engine.loading` already refused
    requests that differ from its baked options) or weights / an in-memory ``model``, whose exports come from the
    export cache (:class:`CachedExports`: exported once per weights, options, runtime and input-size policy, see
    :func:`shape_policy`; the first run pays a few seconds, later runs and processes none). A kind made of parts
    (``kind.parts``: the cascade's BGMv2 and ViTMatte) exports and runs each part on its own. ``dygraph_model(settings,
    device, model)`` builds the eager model when an export is missing. ``cpu_threads`` sets the runtime's threads.
    The runner's ``exports`` is the :class:`CachedExports` (a dict of them per part; None for an export folder).
    """

    def backend(settings, device, model=None, cpu_threads=None):
        source = settings.source

        def cached(part_settings, part_model):
            return CachedExports(name, part_settings, part_model, device, cpu_threads, dygraph_model)

        if model is None and source is not None and source.export_dir is not None:
            static, exports = StaticModel(open_runtime(name, source.export_dir, device, cpu_threads)), None
        elif settings.kind.parts is not None:
            exports = {attribute: cached(part, getattr(model, attribute) if model is not None else None)
                       for attribute, part in part_settings(settings).items()}
            static = settings.kind.assemble({a: _by_shape(e.runtime) for a, e in exports.items()}, settings.options)
        elif settings.kind.export is None:
            raise UserError(f"{settings.kind.name} cannot run on the {name} backend (no static export); use "
                            "--backend dygraph")
        else:
            exports = cached(settings, model)
            static = _by_shape(exports.runtime)

        def runner(src: np.ndarray, guide: np.ndarray) -> dict:
            return settings.kind.run(static, src, guide)

        runner.model, runner.exports = static, exports
        return runner

    return backend
