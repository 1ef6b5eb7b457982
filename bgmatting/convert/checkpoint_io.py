"""Read checkpoints into ``{name: numpy array}`` without ever executing code from the file.

Supported: PyTorch zip checkpoints (torch >= 1.6 ``torch.save``; read without torch by a restricted unpickler that
accepts only tensors, storages and containers), ``.safetensors`` and Paddle ``.pdparams`` (also pickles: read by
the same kind of restricted unpickler, accepting only numpy arrays and containers). Nested checkpoints
(``{"model": state_dict}``, ``{"state_dict": ...}``, ``{"model_state": ...}``) are unwrapped.

Hostile files are refused, not trusted: every tensor record is checked against the storage it views (offset, sizes
and strides non-negative, last element inside the storage, Python integers so no overflow) and every numpy array
against the bytes the pickle really holds; archive members are counted and their inflated sizes, like every array
the reader builds, are charged to a memory budget before anything is allocated. The budget is the smaller of
``max_bytes`` (8 GiB by default) and ``4 × file size + 64 MiB``, so a small file (a zip bomb, a huge shape over a
one-element storage, one buffer reused by many arrays) cannot make the reader take much more than it holds.
"""
import collections
import io
import math
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bgmatting.errors import UserError

MAX_CHECKPOINT_BYTES = 8 << 30  # default cap on what a read may allocate and on the file size
_GROWTH, _GROWTH_SLACK = 4, 64 << 20  # a read may take at most 4 × the file's size + 64 MiB
_MAX_MEMBERS = 100_000  # torch writes one member per storage: ~1000 for the largest models we read
_MAX_DIRECTORY_BYTES = 8 << 20  # the zip's central directory, which zipfile parses whole into memory
_MAX_PICKLE_BYTES = 16 << 20  # torch's data.pkl holds names and tensor records only (~150 bytes a tensor)
_MAX_DIMS = 32
_MAX_INT = (1 << 63) - 1

_NESTING_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "params")
_PLAIN_DTYPES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"}
# what a crafted file can raise while being decoded (MemoryError: a pickle opcode claiming a huge length); all of
# them mean "corrupt or hostile file"
_DECODE_ERRORS = (zipfile.BadZipFile, zlib.error, KeyError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
                  AttributeError, OverflowError, MemoryError)


class _StorageType(NamedTuple):
    """What ``torch.FloatStorage`` etc. unpickle to (immutable, so a pickle's BUILD cannot alter it)."""

    dtype: object  # numpy dtype of the storage's bytes, or "bfloat16"


_TORCH_STORAGE_TYPES = {name: _StorageType(dtype) for name, dtype in {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}.items()}


class _Budget:
    """The bytes a read may still allocate: charged before each inflated member and each array is allocated."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        file_bytes = path.stat().st_size
        if file_bytes > max_bytes:
            raise UserError(f"refusing to load {path}: it is {_mib(file_bytes)} MiB, above the {_mib(max_bytes)} MiB "
                            "limit for checkpoints")
        self.limit = min(max_bytes, _GROWTH * file_bytes + _GROWTH_SLACK)
        self.left = self.limit

    def charge(self, nbytes: int, what: str) -> None:
        """Take ``nbytes`` for ``what`` (named in the error) or raise UserError when the budget cannot cover them."""
        if nbytes > self.left:
            raise UserError(f"refusing to load {self.path}: {what} would take {_mib(nbytes)} MiB, beyond the "
                            f"{_mib(self.limit)} MiB this file may expand to (a zip bomb or a crafted tensor record?)")
        self.left -= nbytes

    def check_total(self, arrays: dict) -> None:
        """Refuse a state whose arrays together exceed the budget (one tensor stored once, named many times)."""
        total = sum(array.nbytes for array in arrays.values())
        if total > self.limit:
            raise UserError(f"refusing to load {self.path}: its tensors take {_mib(total)} MiB, beyond the "
                            f"{_mib(self.limit)} MiB this file may expand to")


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.0f}"


def _refuse(path, module, name):
    raise UserError(f"refusing to load {path}: it references '{module}.{name}', which is not a tensor or a plain "
                    "container (the file may be malicious or not a weights file)")


def _checked_view(storage_numel: int, offset, size, stride):
    """Check a torch tensor record against its storage; return ``(shape, element strides)`` safe for as_strided.

    The record must have non-negative 64-bit integer offset, sizes and strides (at most 32 dimensions), and unless
    the tensor is empty its last element, ``offset + sum((size - 1) * stride)`` computed exactly, must lie inside the
    storage. Strides of dimensions of size 1 are irrelevant and returned as 0. Raises ValueError otherwise.
    """
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= _MAX_DIMS
            and all(type(value) is int and 0 <= value <= _MAX_INT for value in (offset, *size, *stride))):
        raise ValueError("tensor record with a negative, non-integer or out-of-range offset, size or stride, or "
                         f"with mismatched or more than {_MAX_DIMS} dimensions")
    if 0 in size:
        return size, (0,) * len(size)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage_numel:
        raise ValueError(f"tensor of size {size}, stride {stride} at offset {offset} reaches element {last} but its "
                         f"storage holds {storage_numel} (truncated or crafted file)")
    return size, tuple(s if n > 1 else 0 for n, s in zip(size, stride))


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, budget: _Budget):
        super().__init__(file)
        self.archive, self.prefix, self.budget = archive, prefix, budget
        self.cache = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_: data
        if module == "torch" and name in _TORCH_STORAGE_TYPES:
            return _TORCH_STORAGE_TYPES[name]
        _refuse(self.budget.path, module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and type(pid[2]) is str):
            raise UserError(f"unsupported storage record in {self.budget.path}")
        storage_type, key = pid[1], pid[2]
        if key not in self.cache:
            self.cache[key] = self._read_storage(key, storage_type.dtype)
        return self.cache[key]

    def _read_storage(self, key: str, dtype) -> np.ndarray:
        raw = _read_member(self.archive, f"{self.prefix}/data/{key}", self.budget)
        if dtype == "bfloat16":
            self.budget.charge(2 * len(raw), f"bfloat16 storage {key} as float32")
            widened = np.frombuffer(raw, np.uint16).astype(np.uint32)
            widened <<= 16
            return widened.view(np.float32)
        return np.frombuffer(raw, dtype)

    def _rebuild_tensor(self, storage, offset, size, stride, *_unused):
        """``torch._utils._rebuild_tensor_v2``: the tensor's elements as a C-contiguous array, after checking that
        every element it addresses lies inside its storage and that the budget covers the copy."""
        if not isinstance(storage, np.ndarray):
            raise ValueError("tensor record without a storage")
        shape, strides = _checked_view(storage.size, offset, size, stride)
        self.budget.charge(math.prod(shape) * storage.itemsize, f"tensor of shape {shape}")
        view = np.lib.stride_tricks.as_strided(storage[offset:], shape=shape,
                                               strides=tuple(s * storage.itemsize for s in strides))
        return np.ascontiguousarray(view).reshape(shape)


def _read_member(archive: zipfile.ZipFile, name: str, budget: _Budget) -> bytes:
    """One archive member's bytes; its declared inflated size (which zipfile never exceeds) is charged first."""
    info = archive.getinfo(name)
    budget.charge(info.file_size, f"archive member {name}")
    return archive.read(info)


def _open_archive(file, path) -> zipfile.ZipFile:
    """Open the zip after checking the size of its central directory; refuse too many or unsupported members."""
    end_record = zipfile._EndRecData(file)  # the directory's size, before zipfile turns it all into objects
    if end_record and end_record[zipfile._ECD_SIZE] > _MAX_DIRECTORY_BYTES:
        raise UserError(f"refusing to load {path}: its zip directory takes {_mib(end_record[zipfile._ECD_SIZE])} "
                        f"MiB (more than {_mib(_MAX_DIRECTORY_BYTES)} MiB: far too many members)")
    archive = zipfile.ZipFile(file)
    infos = archive.infolist()
    if len(infos) > _MAX_MEMBERS:
        raise UserError(f"refusing to load {path}: its zip has {len(infos)} members (a checkpoint has one per "
                        f"storage; at most {_MAX_MEMBERS} accepted)")
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UserError(f"refusing to load {path}: member {info.filename!r:.80} is encrypted or uses a "
                            "compression method torch does not write")
    return archive


def _read_torch_zip(path, budget):
    with open(path, "rb") as file, _open_archive(file, path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise UserError(f"not a PyTorch checkpoint (no data.pkl in the zip): {path}")
        if archive.getinfo(pickles[0]).file_size > _MAX_PICKLE_BYTES:
            raise UserError(f"refusing to load {path}: its {pickles[0]} is larger than {_mib(_MAX_PICKLE_BYTES)} MiB "
                            "(a state dict's pickle holds only names and tensor records)")
        prefix = pickles[0].rsplit("/", 1)[0] if "/" in pickles[0] else ""
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and _read_member(archive, byteorder, budget).strip() != b"little":
            raise UserError(f"big-endian checkpoints are not supported: {path}")
        data = _read_member(archive, pickles[0], budget)
        return _TorchUnpickler(io.BytesIO(data), archive, prefix, budget).load()


class _PickledDtype:
    """``numpy.dtype(name, align, copy)`` as unpickled: plain numeric types only; ``__setstate__`` takes the byte
    order and nothing else, so a pickle cannot craft a dtype whose items overlap or outgrow the data."""

    def __init__(self, name, align=False, copy=False):
        if name not in _PLAIN_DTYPES:
            raise ValueError(f"array of dtype {name!r:.20} (only plain numeric arrays are read)")
        self.dtype = np.dtype(name)

    def __setstate__(self, state):
        _version, byteorder, *_ = state
        if byteorder not in ("<", ">", "|", "="):
            raise ValueError(f"array dtype with byte order {byteorder!r:.20}")
        self.dtype = self.dtype.newbyteorder(byteorder)


class _PickledArray:
    """``numpy.ndarray`` as unpickled (``_reconstruct`` then ``__setstate__``). The array is built only from the
    bytes the pickle holds, after checking shape, dtype and length; one that never gets its state keeps ``array``
    None instead of exposing uninitialised memory."""

    def __init__(self, budget: _Budget):
        self.budget, self.array = budget, None

    def __setstate__(self, state):
        _version, shape, dtype, fortran_order, raw = state
        if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS
                and all(type(n) is int and 0 <= n <= _MAX_INT for n in shape)):
            raise ValueError(f"array with an invalid shape (negative or non-integer sizes, or more than {_MAX_DIMS} "
                             "dimensions)")
        if not (isinstance(dtype, _PickledDtype) and isinstance(raw, bytes)):
            raise ValueError("array without a plain dtype and its bytes")
        nbytes = math.prod(shape) * dtype.dtype.itemsize
        if len(raw) != nbytes:
            raise ValueError(f"array of shape {shape} and dtype {dtype.dtype} needs {nbytes} bytes but the file holds "
                             f"{len(raw)}")
        self.budget.charge(nbytes, f"array of shape {shape}")
        array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran_order else "C")
        self.array = array.astype(array.dtype.newbyteorder("="), order="K")  # a native-order, writeable copy


def _pickled_scalar(dtype, raw):
    """``numpy.core.multiarray.scalar(dtype, bytes)``: a numpy scalar from exactly one item's bytes."""
    if not (isinstance(dtype, _PickledDtype) and isinstance(raw, bytes) and len(raw) == dtype.dtype.itemsize):
        raise ValueError("numpy scalar without a plain dtype and its bytes")
    return np.frombuffer(raw, dtype.dtype)[0]


_NDARRAY = object()  # what ``numpy.ndarray`` unpickles to: a marker for _reconstruct, never the real class


class _NumpyUnpickler(pickle.Unpickler):
    def __init__(self, file, path, budget: _Budget):
        super().__init__(file)
        self.path, self.budget = path, budget
        self.allowed = {("collections", "OrderedDict"): collections.OrderedDict, ("numpy", "ndarray"): _NDARRAY,
                        ("numpy", "dtype"): _PickledDtype}
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            self.allowed.update({(module, "_reconstruct"): self._reconstruct, (module, "scalar"): _pickled_scalar})

    def find_class(self, module, name):
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        _refuse(self.path, module, name)

    def _reconstruct(self, subtype, shape, typecode):
        """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty placeholder that the pickle's BUILD fills."""
        if subtype is not _NDARRAY:
            raise ValueError("_reconstruct of something other than numpy.ndarray")
        return _PickledArray(self.budget)


def _read_pickle_of_arrays(path, budget):
    with open(path, "rb") as f:
        return _NumpyUnpickler(f, path, budget).load()


def _read_safetensors(path, _budget):
    """The library checks offsets (in the file, not overlapping), lengths and shapes itself and copies each tensor
    once, so memory stays within the file size, which the budget has already capped."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # the library raises several types for truncated/garbled headers
        raise UserError(f"cannot read safetensors file {path}: {e}") from None


def _as_array(value):
    """The numpy array a state-dict value holds, or None when it holds none."""
    if isinstance(value, _PickledArray):
        return value.array
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    return None


def _flatten_state(obj, path):
    while isinstance(obj, dict) and not any(_as_array(v) is not None for v in obj.values()):
        nested = [k for k in _NESTING_KEYS if isinstance(obj.get(k), dict)]
        if not nested:
            break
        obj = obj[nested[0]]
    if not isinstance(obj, dict):
        raise UserError(f"checkpoint {path} does not hold a state dict (found {type(obj).__name__})")
    arrays = {str(k): array for k, v in obj.items() if (array := _as_array(v)) is not None}
    if not arrays:
        raise UserError(f"checkpoint {path} holds no tensors")
    return arrays


def _reader_for(path: Path):
    """The reader for the file's format (by suffix and magic bytes), or UserError for an unknown or legacy file."""
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".safetensors":
        return _read_safetensors
    if head.startswith(b"PK"):
        return _read_torch_zip
    if head[:1] == b"\x80":
        if path.suffix in (".pth", ".pt", ".ckpt", ".tar"):
            raise UserError(f"{path} is a legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with "
                            "torch.save(torch.load(f, weights_only=True), f2) using torch >= 1.6")
        return _read_pickle_of_arrays
    raise UserError(f"unrecognised checkpoint format (not a torch zip, pickle or safetensors file): {path}")


def load_state_arrays(path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict:
    """Read a checkpoint file safely.

    Args:
        path: ``.pth``/``.pt``/``.ckpt`` (torch zip), ``.safetensors`` or ``.pdparams``.
        max_bytes: refuse files larger than this, and reads that would allocate more (the budget is also at most
            4 × the file size + 64 MiB).
    Returns:
        ``{name: np.ndarray}`` in the file's own key names (``running_mean`` etc. untouched).
    Raises:
        UserError: missing file, unknown/corrupt format, legacy torch pickle, any pickle that references something
            other than tensors and containers (no code from the file is ever run), a tensor that reaches outside its
            storage, or a file that would expand beyond the memory budget (a zip bomb).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    reader = _reader_for(path)
    budget = _Budget(path, max_bytes)
    try:
        arrays = _flatten_state(reader(path, budget), path)
    except _DECODE_ERRORS as e:
        raise UserError(f"corrupt checkpoint {path}: {str(e) or type(e).__name__}") from None
    budget.check_total(arrays)
    return arrays
