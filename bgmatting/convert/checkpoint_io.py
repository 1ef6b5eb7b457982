"""Read checkpoints into ``{name: numpy array}`` without ever executing code from the file.

Supported: PyTorch zip checkpoints (torch >= 1.6 ``torch.save``; read without torch by a restricted unpickler that
accepts only tensors, storages and containers), ``.safetensors`` and Paddle ``.pdparams`` (also pickles: read by
the same kind of restricted unpickler, accepting only numpy arrays and containers). Nested checkpoints
(``{"model": state_dict}``, ``{"state_dict": ...}``, ``{"model_state": ...}``) are unwrapped.
"""
import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from bgmatting.errors import UserError

_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_NESTING_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "params")


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _refuse(path, module, name):
    raise UserError(f"refusing to load {path}: it references '{module}.{name}', which is not a tensor or a plain "
                    "container (the file may be malicious or not a weights file)")


def _bytes_to_array(raw: bytes, dtype):
    if dtype == "bfloat16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype)


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    itemsize = storage.itemsize
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.ascontiguousarray(view)


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.cache = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_: data
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(_TORCH_STORAGE_DTYPES[name])
        _refuse(self.path, module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UserError(f"unsupported storage record in {self.path}: {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self.cache:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            self.cache[key] = _bytes_to_array(raw, storage_type.dtype)
        return self.cache[key]


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise UserError(f"not a PyTorch checkpoint (no data.pkl in the zip): {path}")
        prefix = pickles[0].rsplit("/", 1)[0] if "/" in pickles[0] else ""
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise UserError(f"big-endian checkpoints are not supported: {path}")
        return _TorchUnpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix, path).load()


_MULTIARRAY = getattr(np, "_core", None) or np.core
_MULTIARRAY = _MULTIARRAY.multiarray


class _NumpyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
        ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
        ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    }

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        _refuse(self.path, module, name)


def _read_pickle_of_arrays(path):
    with open(path, "rb") as f:
        return _NumpyUnpickler(f, path).load()


def _read_safetensors(path):
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # the library raises several types for truncated/garbled headers
        raise UserError(f"cannot read safetensors file {path}: {e}") from None


def _flatten_state(obj, path):
    while isinstance(obj, dict) and not any(isinstance(v, np.ndarray) for v in obj.values()):
        nested = [k for k in _NESTING_KEYS if isinstance(obj.get(k), dict)]
        if not nested:
            break
        obj = obj[nested[0]]
    if not isinstance(obj, dict):
        raise UserError(f"checkpoint {path} does not hold a state dict (found {type(obj).__name__})")
    arrays = {str(k): np.asarray(v) for k, v in obj.items() if isinstance(v, (np.ndarray, np.generic))}
    if not arrays:
        raise UserError(f"checkpoint {path} holds no tensors")
    return arrays


def load_state_arrays(path) -> dict:
    """Read a checkpoint file safely.

    Args:
        path: ``.pth``/``.pt``/``.ckpt`` (torch zip), ``.safetensors`` or ``.pdparams``.
    Returns:
        ``{name: np.ndarray}`` in the file's own key names (``running_mean`` etc. untouched).
    Raises:
        UserError: missing file, unknown/corrupt format, legacy torch pickle, or any pickle that references
            something other than tensors and containers (no code from the file is ever run).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if head.startswith(b"PK"):
        try:
            obj = _read_torch_zip(path)
        except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, ValueError) as e:
            raise UserError(f"corrupt PyTorch checkpoint {path}: {e}") from None
    elif head[:1] == b"\x80":
        if path.suffix in (".pth", ".pt", ".ckpt", ".tar"):
            raise UserError(f"{path} is a legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with "
                            "torch.save(torch.load(f, weights_only=True), f2) using torch >= 1.6")
        try:
            obj = _read_pickle_of_arrays(path)
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
            raise UserError(f"corrupt checkpoint {path}: {e}") from None
    else:
        raise UserError(f"unrecognised checkpoint format (not a torch zip, pickle or safetensors file): {path}")
    return _flatten_state(obj, path)
