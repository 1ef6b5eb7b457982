"""The server's parts without a server: the model worker's queue, path confinement, archive safety, names."""
import io
import stat
import threading
import time
import zipfile

import cv2
import numpy as np
import pytest

from bgmatting.serve.batch_inputs import confine, extract_archive
from bgmatting.serve.errors import ApiError
from bgmatting.serve.matting import matte_and_store
from bgmatting.data.compositing import cutout_rgba
from bgmatting.serve.storage import ResultStore, display_name, thumbnail
from bgmatting.serve.worker import ModelWorker


def test_worker_runs_one_call_at_a_time_on_one_model():
    built = []
    worker = ModelWorker(lambda: built.append(object()) or built[-1], max_queue=16)
    worker.start()
    running, overlaps, models = [0], [], set()
    lock = threading.Lock()

    def call(model, index):
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        models.add(id(model))
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return index * 2

    futures = [worker.submit(call, i) for i in range(12)]
    assert [f.result() for f in futures] == [i * 2 for i in range(12)]
    assert max(overlaps) == 1 and len(built) == 1 and models == {id(built[0])}
    assert worker.pending == 0
    worker.shutdown()


def test_worker_refuses_beyond_its_queue_with_503_and_frees_slots():
    worker = ModelWorker(lambda: "model", max_queue=2)
    worker.start()
    gate = threading.Event()
    first, second = worker.submit(lambda m: gate.wait(5)), worker.submit(lambda m: "second")
    with pytest.raises(ApiError) as refused:
        worker.submit(lambda m: "third")
    assert refused.value.status == 503 and "busy" in refused.value.detail
    gate.set()
    assert first.result() is True and second.result() == "second"
    assert worker.submit(lambda m: m).result() == "model"  # slots came back
    worker.shutdown()


def test_worker_reports_a_factory_failure_at_start():
    def broken():
        raise RuntimeError("checkpoint does not fit")
    with pytest.raises(RuntimeError, match="does not fit"):
        ModelWorker(broken, max_queue=1).start()


def test_confine_keeps_paths_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "out").symlink_to(tmp_path / "elsewhere")
    (root / "in").symlink_to(root / "a")
    assert confine(root, "a/b") == (root / "a" / "b").resolve()
    assert confine(root, "in") == (root / "a").resolve()  # a symlink staying inside is fine
    for escape in ("../root/a", "a/../../elsewhere", "/tmp", "out", "C:/Windows", "..\\elsewhere"):
        with pytest.raises(ApiError) as refused:
            confine(root, escape)
        assert refused.value.status == 403, escape


def _zip(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def test_archive_symlink_members_are_refused(tmp_path):
    link = zipfile.ZipInfo("src/a.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "a.zip"
    path.write_bytes(_zip([(link, "/etc/passwd")]))
    with pytest.raises(ApiError) as refused:
        extract_archive(path, tmp_path / "out", max_bytes=10_000, max_files=10)
    assert refused.value.status == 400 and "symlink" in refused.value.detail
    assert not (tmp_path / "out").exists()


def test_archive_size_is_bounded_before_unpacking(tmp_path):
    path = tmp_path / "bomb.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("src/a.png", b"\0" * 200_000)  # compresses to a few hundred bytes
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ApiError) as refused:
        extract_archive(path, tmp_path / "out", max_bytes=100_000, max_files=10)
    assert refused.value.status == 413


def test_client_file_names_are_shown_but_never_used_as_paths():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\photo <1>.jpg") == "photo _1_.jpg"
    assert display_name("") == "image" and len(display_name("x" * 500)) == 100


def test_cutout_and_thumbnail():
    fgr = np.full((4, 6, 3), 0.5, np.float32)
    pha = np.zeros((4, 6), np.float32)
    pha[:, 3:] = 0.25
    pha[:, 2] = 0.4 / 255  # rounds to 0 in the PNG: no colour either
    rgba = cutout_rgba(fgr, pha)
    assert rgba.shape == (4, 6, 4)
    assert np.all(rgba[:, :3, :3] == 0) and np.all(rgba[:, 3:, :3] == 0.5) and np.all(rgba[:, 3:, 3] == 0.25)
    small = thumbnail(np.zeros((400, 200, 4), np.float32), size=160)
    assert small.shape == (160, 80, 4) and small.dtype == np.uint8


class _TrimapModel:
    """Stands in for a trimap Predictor: alpha = trimap / 255, foreground = the photo."""

    class kind:
        guide = "trimap"

    def __call__(self, src, trimap):
        return {"pha": trimap.astype(np.float32) / 255, "fgr": src.astype(np.float32) / 255}


def _png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def test_trimap_models_get_a_grey_trimap_and_the_same_checks(tmp_path):
    store = ResultStore(tmp_path, keep=1)
    photo = np.full((6, 8, 3), 200, np.uint8)
    trimap = np.zeros((6, 8, 3), np.uint8)  # stored as colour: must arrive as one grey channel
    trimap[:, 4:] = 255
    trimap[:, 3] = 128
    first = matte_and_store(_TrimapModel(), store, _png(photo), _png(trimap), 1000, False, {"name": "p"})
    alpha = cv2.imread(str(store.path(first, "pha")), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (6, 8) and list(alpha[0]) == [0, 0, 0, 128, 255, 255, 255, 255]
    with pytest.raises(ApiError) as refused:
        matte_and_store(_TrimapModel(), store, _png(photo), _png(trimap[:5]), 1000, False, {"name": "p"})
    assert refused.value.status == 422 and "trimap is 8x5" in refused.value.detail
    second = matte_and_store(_TrimapModel(), store, _png(photo), _png(trimap), 1000, False, {"name": "q"})
    assert [item["id"] for item in store.recent(10)] == [second]  # keep=1: the oldest was deleted


def test_stored_images_are_predict_outputs(tmp_path):
    """The web app writes each output as predict.py renders it (one implementation, bgmatting.pipeline.render)."""
    from bgmatting.data.io import read_image
    from bgmatting.pipeline.render import render

    rng = np.random.default_rng(0)
    result = {"pha": rng.random((7, 9), dtype=np.float32), "fgr": rng.random((7, 9, 3), dtype=np.float32)}
    store = ResultStore(tmp_path, keep=2)
    result_id = store.save(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8), result, {"name": "x"})
    for kind in ("com", "pha", "fgr"):
        stored = cv2.imread(str(store.path(result_id, kind)), cv2.IMREAD_UNCHANGED)
        expected = render(kind, result)
        if expected.ndim == 3:  # cv2 reads BGR(A)
            stored = read_image(store.path(result_id, kind)) if kind == "fgr" else stored[..., [2, 1, 0, 3]]
        np.testing.assert_array_equal(stored, expected)
