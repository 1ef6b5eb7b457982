"""Hostile checkpoints (issue 13): tensor records that point outside their storage, zip bombs, crafted numpy pickles
and safetensors headers are refused with one clear line, in bounded memory, and never read out of bounds."""
import collections
import io
import json
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import cv2
import numpy as np
import pytest
import torch

from bgmatting.convert import checkpoint_io
from bgmatting.convert.checkpoint_io import load_state_arrays
from bgmatting.errors import UserError
from tests.conftest import ROOT, run_script


class _Storage:
    """A storage record as torch pickles it: by persistent id (``pid`` replaces it), its bytes in ``archive/data/KEY``."""

    def __init__(self, key, storage_type=torch.FloatStorage, numel=0, pid=None):
        self.pid = pid or ("storage", storage_type, key, "cpu", numel)


class _Tensor:
    """A tensor record as torch pickles it: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False,
                                                 collections.OrderedDict())


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def write_torch_zip(path, state, storages, compression=zipfile.ZIP_STORED):
    """Write ``state`` (``_Tensor`` records) and ``storages`` ({key: bytes}) in torch's zip layout."""
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def one_tensor_file(path, offset, size, stride, numel=12):
    """A checkpoint whose only tensor ``w`` views a float32 storage of ``numel`` elements (0, 1, 2, …)."""
    storage = _Storage("0", numel=numel)
    data = np.arange(numel, dtype=np.float32).tobytes()
    return write_torch_zip(path, {"w": _Tensor(storage, offset, size, stride)}, {"0": data})


def assert_refused(path, *fragments, **kwargs):
    with pytest.raises(UserError) as info:
        load_state_arrays(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_hand_written_records_read_like_torch(tmp_path):
    storage = _Storage("0", numel=12)
    state = {"t": _Tensor(storage, 1, (3, 2), (1, 4)), "row": _Tensor(storage, 8, (1, 4), (99, 1)),
             "s": _Tensor(storage, 11, (), ()), "e": _Tensor(storage, 12, (0, 7), (7, 1))}
    path = write_torch_zip(tmp_path / "ok.pth", state, {"0": np.arange(12, dtype=np.float32).tobytes()})
    expected = torch.load(path, weights_only=True)
    arrays = load_state_arrays(path)
    assert set(arrays) == set(expected)
    for key, tensor in expected.items():
        assert arrays[key].shape == tuple(tensor.shape)
        np.testing.assert_array_equal(arrays[key], tensor.numpy())


def test_legitimate_torch_checkpoint_reads_identically(tmp_path):
    base = torch.randn(6, 8)
    state = {"transposed": base.t(), "slice": base[2:5, 1::3], "half": torch.randn(3, 4).half().t(),
             "bf16": torch.randn(5).bfloat16(), "long": torch.arange(7), "bool": torch.tensor([True, False]),
             "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5), "int8": torch.arange(-3, 3, dtype=torch.int8)}
    torch.save({"state_dict": state}, tmp_path / "real.pth")
    arrays = load_state_arrays(tmp_path / "real.pth")
    for key, tensor in state.items():
        expected = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
        assert arrays[key].shape == tuple(tensor.shape) and arrays[key].dtype == expected.numpy().dtype
        np.testing.assert_array_equal(arrays[key], expected.numpy())


@pytest.mark.parametrize("offset, size, stride, fragment", [
    (0, (40,), (1,), "storage holds 12"),                      # storage shorter than its tensor
    (10, (4,), (1,), "reaches element 13"),                    # offset pushes the tensor past the end
    (0, (4, 4), (4, 1), "reaches element 15"),                 # strides past the end
    (0, (3, 4), (1, 3), "reaches element 11"),                 # (in bounds: the control case)
    (3, (4,), (-1,), "negative"),                              # negative stride (torch never writes one)
    (-4, (4,), (1,), "negative"),                              # negative offset
    (0, (2 ** 32, 2 ** 32), (2 ** 32, 1), "reaches element"),  # extent wraps int64 to -1
    (0, (2 ** 64 + 1,), (1,), "out-of-range"),                 # does not fit int64
    (0, (1,) * 40, (1,) * 40, "dimensions"),                   # absurd dimension count
    (0, (4, 4), (1,), "dimensions"),                           # size and stride disagree
    (0, (4.0,), (1,), "non-integer"),
])
def test_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride, fragment):
    path = one_tensor_file(tmp_path / "bad.pth", offset, size, stride)
    if fragment == "reaches element 11":
        np.testing.assert_array_equal(load_state_arrays(path)["w"], np.arange(12, dtype=np.float32).reshape(4, 3).T)
    else:
        assert_refused(path, fragment)


def test_stride_zero_views_are_bounded_by_the_budget(tmp_path):
    path = one_tensor_file(tmp_path / "expand.pth", 0, (2 ** 40,), (0,))  # 4 TiB from one element
    assert_refused(path, "tensor of shape (1099511627776,)", "MiB")
    path = one_tensor_file(tmp_path / "small.pth", 0, (1000, 1000), (0, 0))
    assert load_state_arrays(path)["w"].shape == (1000, 1000)


def test_one_tensor_under_many_names_is_bounded(tmp_path):
    tensor = _Tensor(_Storage("0", numel=1 << 20), 0, (1 << 20,), (1,))  # 4 MiB, pickled once, named many times
    path = write_torch_zip(tmp_path / "tied.pth", {f"w{i}": tensor for i in range(10)}, {"0": bytes(4 << 20)})
    assert len(load_state_arrays(path)) == 10
    assert_refused(path, "its tensors take 40 MiB", max_bytes=32 << 20)
    path = write_torch_zip(tmp_path / "many.pth", {f"w{i}": tensor for i in range(100)}, {"0": bytes(4 << 20)})
    assert_refused(path, "its tensors take 400 MiB")


class _TensorWithState(_Tensor):
    def __reduce__(self):  # a BUILD on the rebuilt array: numpy's own __setstate__ could reshape it
        return super().__reduce__() + ((1, (1 << 30,), "f4", False, ""),)


def test_build_on_a_rebuilt_tensor_is_refused(tmp_path):
    path = write_torch_zip(tmp_path / "build.pth", {"w": _TensorWithState(_Storage("0"), 0, (1,), (1,))},
                           {"0": bytes(4)})
    assert_refused(path, "corrupt")


def test_storage_member_larger_than_the_budget_is_not_read(tmp_path):
    path = write_torch_zip(tmp_path / "big.pth", {"w": _Tensor(_Storage("0"), 0, (4,), (1,))}, {"0": bytes(4 << 20)},
                           compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    assert_refused(path, "archive member archive/data/0 would take 4 MiB", max_bytes=1 << 20)


def test_bad_storage_records_and_members(tmp_path):
    for pid in [("storage",), ("storage", "FloatStorage", "0"), ("storage", torch.FloatStorage, 0), "storage"]:
        storage = _Storage("0", pid=pid)
        path = write_torch_zip(tmp_path / "pid.pth", {"w": _Tensor(storage, 0, (1,), (1,))}, {"0": bytes(4)})
        assert_refused(path, "storage record")
    missing = write_torch_zip(tmp_path / "missing.pth", {"w": _Tensor(_Storage("7"), 0, (1,), (1,))}, {})
    assert_refused(missing, "archive/data/7")
    ragged = write_torch_zip(tmp_path / "ragged.pth", {"w": _Tensor(_Storage("0"), 0, (1,), (1,))}, {"0": bytes(5)})
    assert_refused(ragged, "multiple of element size")
    not_storage = write_torch_zip(tmp_path / "nostorage.pth", {"w": _Tensor([1, 2], 0, (1,), (1,))}, {})
    assert_refused(not_storage, "storage")


def test_archive_limits(tmp_path, monkeypatch):
    path = one_tensor_file(tmp_path / "ok.pth", 0, (4,), (1,))
    monkeypatch.setattr(checkpoint_io, "_MAX_MEMBERS", 3)
    assert_refused(path, "4 members")
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint_io, "_MAX_PICKLE_BYTES", 16)
    assert_refused(path, "data.pkl")
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint_io, "_MAX_DIRECTORY_BYTES", 64)
    assert_refused(path, "directory")
    monkeypatch.undo()
    bz2 = write_torch_zip(tmp_path / "bz2.pth", {"w": _Tensor(_Storage("0"), 0, (1,), (1,))}, {"0": bytes(4)},
                          compression=zipfile.ZIP_BZIP2)
    assert_refused(bz2, "compression")


def test_corrupt_deflate_stream_is_one_line(tmp_path):
    path = one_tensor_file(tmp_path / "ok.pth", 0, (4,), (1,))
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp_path / "z.pth", "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info))
    data = bytearray((tmp_path / "z.pth").read_bytes())
    start = data.index(b"archive/data/0") + len("archive/data/0")
    data[start:start + 8] = b"\xff" * 8  # garbage where the deflate stream of the storage begins
    (tmp_path / "z.pth").write_bytes(bytes(data))
    assert_refused(tmp_path / "z.pth", "corrupt")


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """A 1 MiB .pth whose storage member inflates to 1 GiB of zeros, viewed by one tensor of that size (before the
    fix, reading it peaked at twice the inflated size)."""
    numel = 1 << 28
    path = tmp_path_factory.mktemp("bomb") / "bomb.pth"
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump({"w": _Tensor(_Storage("0", numel=numel), 0, (numel,), (1,))})
    chunk = bytes(64 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        with archive.open("archive/data/0", "w", force_zip64=True) as member:
            for _ in range(4 * numel // len(chunk)):
                member.write(chunk)
    return path


def test_zip_bomb_is_refused_in_bounded_memory(zip_bomb):
    assert zip_bomb.stat().st_size < 2 << 20
    script = textwrap.dedent(f"""
        from bgmatting.convert.checkpoint_io import load_state_arrays
        from bgmatting.errors import UserError
        try:
            load_state_arrays({str(zip_bomb)!r})
        except UserError as e:
            print("refused:", e)
        print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    """)  # VmHWM, unlike ru_maxrss, does not inherit the parent's peak across fork + exec
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "archive/data/0" in done.stdout, done.stdout
    peak_mib = int(done.stdout.split("VmHWM:")[1].split()[0]) / 1024
    assert peak_mib < 256, f"peak RSS {peak_mib:.0f} MiB"


def test_cli_refuses_bad_checkpoint_with_one_line(tmp_path):
    bad = one_tensor_file(tmp_path / "bad.pth", 0, (1 << 20,), (1,))
    done = run_script("tools/convert_weights.py", "--src", bad, "--dst", tmp_path / "out.pdparams")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.pth" in lines[0], done.stderr
    assert not list(tmp_path.glob("out*"))


def test_predict_refuses_bad_checkpoint_with_one_line(tmp_path):
    bad = one_tensor_file(tmp_path / "bad.pth", 0, (1 << 20,), (1,))
    image = np.full((64, 64, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), image)
    cv2.imwrite(str(tmp_path / "y.png"), image)
    done = run_script("predict.py", "--model-type", "mattingbase", "--model-backbone", "mobilenetv2",
                      "--model-checkpoint", bad, "--src", tmp_path / "x.png", "--bgr", tmp_path / "y.png",
                      "--output-dir", tmp_path / "o", "--output-types", "pha")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.pth" in lines[0], done.stderr
    assert not (tmp_path / "o").exists()


# --- .pdparams: pickles of numpy arrays -------------------------------------------------------------------------

def _ops(obj):
    """The pickle opcodes (protocol 3) that push ``obj``, without the header and STOP."""
    return pickle.dumps(obj, 3)[2:-1]


_NDARRAY_NEW = b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"


def _array_pickle(shape, dtype, raw_ops):
    """Opcodes for one ndarray the way numpy pickles it, with ``shape``, ``dtype`` and the bytes ``raw_ops`` push."""
    dtype_ops = b"cnumpy\ndtype\n" + _ops((dtype, False, True)) + b"R" + _ops((3, "<", None, None, None, -1, -1, 0))
    return (_NDARRAY_NEW + _ops((0,)) + _ops(b"b") + b"\x87R" + b"(" + _ops(1) + _ops(shape) + dtype_ops + b"b"
            + b"\x89" + raw_ops + b"tb")


def pdparams(path, *arrays):
    """A .pdparams pickle of ``{"w0": array0, "w1": …}`` from opcodes such as ``_array_pickle``'s."""
    ops = b"\x80\x03}"
    for index, array_ops in enumerate(arrays):
        ops += _ops(f"w{index}") + array_ops + b"s"
    path.write_bytes(ops + b".")
    return path


def test_hand_written_pdparams_opcodes_match_numpy(tmp_path):
    raw = np.arange(6, dtype=np.float32).tobytes()
    path = pdparams(tmp_path / "ok.pdparams", _array_pickle((2, 3), "f4", _ops(raw)))
    np.testing.assert_array_equal(pickle.loads(path.read_bytes())["w0"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(load_state_arrays(path)["w0"], np.arange(6).reshape(2, 3))


def test_legitimate_pdparams_read_identically(tmp_path):
    state = {"f": np.random.rand(3, 4).astype(np.float32), "fortran": np.asfortranarray(np.random.rand(3, 5)),
             "big_endian": np.arange(5, dtype=">i4"), "u2": np.arange(4, dtype=np.uint16), "b": np.array([True]),
             "scalar": np.float32(1.5), "empty": np.zeros((0, 4), np.float16)}
    for protocol in (3, 4):
        (tmp_path / "p.pdparams").write_bytes(pickle.dumps({"params": state}, protocol))
        arrays = load_state_arrays(tmp_path / "p.pdparams")
        for key, value in state.items():
            np.testing.assert_array_equal(arrays[key], value)
            assert arrays[key].dtype == np.asarray(value).dtype.newbyteorder("=")
        assert arrays["big_endian"].dtype.isnative and arrays["f"].flags.writeable


@pytest.mark.parametrize("ops, fragment", [
    (_NDARRAY_NEW + _ops((64,)) + _ops(b"f8") + b"\x87R", "no tensors"),  # no state: uninitialised heap bytes
    (_array_pickle((2 ** 40,), "f4", _ops(bytes(16))), "needs 4398046511104 bytes"),
    (_array_pickle((2 ** 32, 2 ** 32), "f4", _ops(bytes(16))), "needs"),  # product overflows int64
    (_array_pickle((1,) * 80, "f4", _ops(bytes(4))), "shape"),            # absurd dimension count
    (_array_pickle((-1, 4), "f4", _ops(bytes(16))), "shape"),
    (_array_pickle((2,), "O", _ops(bytes(16))), "dtype 'O'"),             # object arrays
    (_array_pickle((2,), "V8", _ops(bytes(16))), "dtype 'V8'"),
    (_array_pickle((2,), "f4", _ops([1.0, 2.0])), "bytes"),
    (b"cnumpy\nndarray\n" + _ops(((64,), "f8")) + b"R", "not callable"),  # ndarray(shape, dtype): uninitialised
])
def test_crafted_numpy_pickles_are_refused(tmp_path, ops, fragment):
    assert_refused(pdparams(tmp_path / "bad.pdparams", ops), fragment)


def test_one_buffer_reused_for_many_arrays_is_bounded(tmp_path):
    memo = struct.pack("<I", 999)
    first = _array_pickle((1 << 18,), "f4", _ops(bytes(1 << 20)) + b"r" + memo)  # memoize one 1 MiB buffer…
    again = _array_pickle((1 << 18,), "f4", b"j" + memo)  # …and build 200 arrays from it
    path = pdparams(tmp_path / "reuse.pdparams", first, *[again] * 200)
    assert path.stat().st_size < 2 << 20
    assert_refused(path, "MiB")


# --- .safetensors -----------------------------------------------------------------------------------------------

def safetensors_file(path, header, data=b""):
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


@pytest.mark.parametrize("header, data", [
    ({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 1 << 42]}}, bytes(16)),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)),
    ({"w": {"dtype": "F32", "shape": [1 << 32, 1 << 32], "data_offsets": [0, 16]}}, bytes(16)),
    ({"w": {"dtype": "F32", "shape": [1] * 100, "data_offsets": [0, 4]}}, bytes(4)),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
      "v": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)),
])
def test_crafted_safetensors_are_refused(tmp_path, header, data):
    assert_refused(safetensors_file(tmp_path / "bad.safetensors", header, data), "cannot read safetensors")


def test_safetensors_header_length_past_the_end(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    assert_refused(path, "cannot read safetensors")


def test_file_larger_than_the_cap_is_refused(tmp_path):
    path = safetensors_file(tmp_path / "ok.safetensors", {"w": {"dtype": "F32", "shape": [4],
                                                               "data_offsets": [0, 16]}}, bytes(16))
    np.testing.assert_array_equal(load_state_arrays(path)["w"], np.zeros(4))
    assert_refused(path, "limit", max_bytes=64)
