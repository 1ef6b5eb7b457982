"""Runtimes for exported models (:mod:`bgmatting.export`) behind one interface, and the Predictor backends on them.

- :class:`PaddleInferenceRuntime`: Paddle Inference; CPU with oneDNN and a math-library thread count, or GPU
  (+ TensorRT) when Paddle is a CUDA build.
- :class:`OnnxRuntime`: onnxruntime on ``model.onnx`` (CPU; CUDA when onnxruntime has it).

Both take numpy float32 arrays in the export's input order and return a tuple of numpy arrays in its output
order (``export.json``). :func:`static_backend` turns one into a ``Predictor`` backend: it opens an export
directory, or exports a checkpoint on the fly into a temporary directory first.
"""
import os
import tempfile
import warnings

import numpy as np

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

    def __call__(self, *inputs):
        outputs = tuple(np.asarray(o).view(_Array) for o in self.runtime(*inputs))
        return outputs[0] if len(outputs) == 1 else outputs


def static_backend(name: str, dygraph_model):
    """A Predictor backend running the ``name`` runtime (``"inference"`` / ``"onnx"``).

    The settings' source may be an export folder (used as is; :mod:`bgmatting.engine.loading` already refused
    requests that differ from its baked options) or weights / an in-memory ``model``, which
    ``dygraph_model(settings, device, model)`` builds and which is then exported into a temporary folder
    (a few seconds). ``cpu_threads`` sets the runtime's threads.
    """

    def backend(settings, device, model=None, cpu_threads=None):
        source = settings.source
        if model is None and source is not None and source.export_dir is not None:
            runtime = open_runtime(name, source.export_dir, device, cpu_threads)
        else:
            if settings.kind.export is None:
                raise UserError(f"{settings.kind.name} cannot run on the {name} backend (no static export); use "
                                "--backend dygraph")
            model = dygraph_model(settings, "cpu", model)
            with tempfile.TemporaryDirectory(prefix="bgmatting-export-") as directory:
                export_model(model, settings.kind.export, settings.kind.name, directory, onnx=name == "onnx")
                runtime = open_runtime(name, directory, device, cpu_threads)
        static = StaticModel(runtime)

        def runner(src: np.ndarray, guide: np.ndarray) -> dict:
            return settings.kind.run(static, src, guide)

        runner.runtime = runtime
        return runner

    return backend
