"""The HTTP API against a real server on 127.0.0.1 (tiny random-weight model): each endpoint, each refusal,
batches from a confined folder and from a zip, and a bounded 20-concurrent load test with flat memory."""
import io
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from test_serve_cli import ServerProcess

MAX_UPLOAD_MB = 0.1
MAX_PIXELS = 20_000  # 0.02 MP


def png(image: np.ndarray) -> bytes:
    """RGB (H, W, 3) or grey uint8 → PNG bytes."""
    return cv2.imencode(".png", image[:, :, ::-1] if image.ndim == 3 else image)[1].tobytes()


def decode(data: bytes) -> np.ndarray:
    """PNG bytes → RGB / RGBA / grey uint8 array (channel order as stored, made RGB[A])."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a decodable image"
    if image.ndim == 3:
        return image[:, :, [2, 1, 0, 3]] if image.shape[2] == 4 else image[:, :, ::-1]
    return image


def pair(height, width, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), np.uint8), rng.integers(0, 256, (height, width, 3), np.uint8)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("serve_api")
    (workdir / "root").mkdir()
    with ServerProcess(workdir, "--batch-root", str(workdir / "root"), "--max-upload-mb", str(MAX_UPLOAD_MB),
                       "--max-megapixels", str(MAX_PIXELS / 1e6), "--max-queue", "40", "--max-batch-files", "8",
                       "--max-archive-mb", "0.5") as running:
        running.root = workdir / "root"
        running.workdir = workdir
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def post_matte(client, src, bgr, **form):
    return client.post("/api/matte", files={"src": ("photo.png", png(src), "image/png"),
                                            "bgr": ("plate.png", png(bgr), "image/png")}, data=form)


def test_healthz_reports_the_model_and_limits(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["model"]["guide"] == "bgr" and health["model"]["backbone"] == "mobilenetv2"
    assert health["limits"]["max_pixels"] == MAX_PIXELS
    assert health["batch_folders"] is True


def test_openapi_describes_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/matte", "/api/batch", "/api/jobs/{job_id}", "/api/history", "/healthz"):
        assert path in spec["paths"], path
    matte_form = spec["paths"]["/api/matte"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in matte_form


def test_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="matte-form"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_matte_answers_the_models_own_cutout(client):
    """The served alpha equals an in-process Predictor with the same seed (so decoding, the worker and the
    PNG encoding lose nothing but the final rounding), and com = fgr·[8-bit α > 0] with α in the 4th channel."""
    import paddle

    from bgmatting.engine.predictor import Predictor

    src, bgr = pair(36, 52, seed=1)  # sides not multiples of 4: padding and cropping happen
    response = post_matte(client, src, bgr)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    com = decode(response.content)
    assert com.shape == (36, 52, 4)

    paddle.seed(0)  # the server's --seed default
    reference = Predictor("mattingbase", "mobilenetv2")(src=src, bgr=bgr)
    expected_alpha = np.round(reference["pha"] * 255)
    assert np.abs(com[:, :, 3].astype(int) - expected_alpha).max() <= 1
    assert expected_alpha.std() > 0  # a real, varying matte, not a constant
    expected_rgb = np.round(reference["fgr"] * 255) * (expected_alpha[:, :, None] > 0)
    assert np.abs(com[:, :, :3].astype(int) - expected_rgb).max() <= 1

    result_id = response.headers["x-result-id"]
    alpha = decode(client.post("/api/matte", files={"src": ("a.png", png(src)), "bgr": ("b.png", png(bgr))},
                               data={"output": "pha"}).content)
    fgr = decode(client.get(f"/api/results/{result_id}/fgr.png").content)
    assert alpha.shape == (36, 52) and np.array_equal(alpha, com[:, :, 3])
    assert fgr.shape == (36, 52, 3)


def test_results_and_history_link_every_output(client):
    src, bgr = pair(40, 60, seed=2)
    result_id = post_matte(client, src, bgr).headers["x-result-id"]
    meta = client.get(f"/api/results/{result_id}").json()
    assert (meta["width"], meta["height"], meta["name"]) == (60, 40, "photo.png")
    source = decode(client.get(meta["links"]["src"]).content)
    assert np.array_equal(source, src)
    items = client.get("/api/history", params={"limit": 3}).json()["items"]
    assert items[0]["id"] == result_id and len(items) <= 3
    assert [i["created"] for i in items] == sorted((i["created"] for i in items), reverse=True)
    thumb = decode(client.get(items[0]["links"]["thumb"]).content)
    assert thumb.shape == (40, 60, 4)  # already under the thumbnail size: kept as is


def test_unknown_results_are_404(client):
    assert client.get("/api/results/" + "0" * 32).status_code == 404
    assert client.get("/api/results/not-an-id/com.png").status_code == 404
    src, bgr = pair(8, 8, seed=3)
    result_id = post_matte(client, src, bgr).headers["x-result-id"]
    answer = client.get(f"/api/results/{result_id}/meta.png")  # a real file name that is not an output kind
    assert answer.status_code == 404 and "choose one of" in answer.json()["detail"]


@pytest.mark.parametrize("case", ["file too large", "request too large", "too many pixels", "not an image",
                                  "truncated image", "size mismatch", "no plate", "trimap instead of plate",
                                  "bad output"])
def test_bad_inputs_get_a_clear_4xx(client, case):
    src, bgr = pair(20, 30, seed=4)
    files = {"src": ("photo.png", png(src)), "bgr": ("plate.png", png(bgr))}
    data = {}
    status, words = {
        "file too large": (413, "src: file is"),
        "request too large": (413, "request body is larger"),
        "too many pixels": (413, "the limit is 0.02 MP"),
        "not an image": (415, "not an image"),
        "truncated image": (415, "corrupt or truncated"),
        "size mismatch": (422, "src is 30x20 but bgr is 30x21"),
        "no plate": (422, "'bgr' is required"),
        "trimap instead of plate": (422, "takes a bgr, not a trimap"),
        "bad output": (422, "field 'output'"),
    }[case]
    if case == "file too large":
        files["src"] = ("photo.png", os.urandom(int(MAX_UPLOAD_MB * 1e6) + 10))
    elif case == "request too large":
        files["src"] = ("photo.png", os.urandom(2 * 1024 * 1024))
    elif case == "too many pixels":
        files["src"] = ("photo.png", png(np.zeros((150, 150, 3), np.uint8)))  # 22 500 px, a few hundred bytes
    elif case == "not an image":
        files["src"] = ("photo.png", b"#!/bin/sh\necho this is a script\n")
    elif case == "truncated image":
        whole = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8))[1].tobytes()
        files["src"] = ("photo.jpg", whole[: len(whole) // 3])
    elif case == "size mismatch":
        files["bgr"] = ("plate.png", png(pair(21, 30, seed=5)[1]))
    elif case == "no plate":
        del files["bgr"]
    elif case == "trimap instead of plate":
        files["trimap"] = files.pop("bgr")
    elif case == "bad output":
        data["output"] = "everything"
    answer = client.post("/api/matte", files=files, data=data)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]


def test_align_accepts_a_plate_of_another_size(client):
    src, _ = pair(20, 30, seed=6)
    plate = pair(24, 36, seed=7)[1]
    assert post_matte(client, src, plate).status_code == 422
    answer = post_matte(client, src, plate, align="true")
    assert answer.status_code == 200, answer.text
    assert decode(answer.content).shape == (20, 30, 4)
    assert client.get(f"/api/results/{answer.headers['x-result-id']}").json()["align"] is True


def test_a_streamed_body_is_cut_off_at_the_limit(client):
    """Chunked upload, no Content-Length: the limit is enforced while the body streams."""
    def body():
        yield (b'--xyz\r\nContent-Disposition: form-data; name="src"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(100):  # 6.5 MB in all, against a 1.3 MB request limit
            yield b"x" * 65536

    answer = client.post("/api/matte", content=body(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert answer.status_code == 413 and "request body is larger" in answer.json()["detail"]
    assert client.get("/healthz").status_code == 200


def wait_for_job(client, url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {url} did not finish: {job}")


def write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(image))


def test_batch_of_a_confined_folder_with_one_plate_for_all(client, server):
    shoot = server.root / "shoot1"
    sizes = {"a": (20, 24), "b": (16, 28), "sub/c": (12, 12)}
    for index, (name, (height, width)) in enumerate(sizes.items()):
        write_png(shoot / "src" / f"{name}.png", pair(height, width, seed=10 + index)[0])
    write_png(shoot / "bgr" / "plate.png", pair(20, 24, seed=20)[1])  # fits a only: b and c fail on size

    started = client.post("/api/batch", data={"folder": "shoot1"})
    assert started.status_code == 202 and started.json()["total"] == 3
    job = wait_for_job(client, started.json()["url"])
    assert (job["status"], job["done"], job["progress"]) == ("done", 3, 1.0)
    assert [r["name"] for r in job["results"]] == ["a"]
    assert sorted(e["name"] for e in job["errors"]) == ["b", "sub/c"]
    assert all("size mismatch" in e["error"] for e in job["errors"])
    archive = zipfile.ZipFile(io.BytesIO(client.get(job["archive"]).content))
    assert archive.namelist() == ["a.png"]
    assert decode(archive.read("a.png")).shape == (20, 24, 4)


def test_batch_pairs_plates_by_name_and_reports_missing_ones(client, server):
    for name in ("x", "y"):
        src, bgr = pair(12, 16, seed=ord(name))
        write_png(server.root / "paired" / "src" / f"{name}.png", src)
        write_png(server.root / "paired" / "bgr" / f"{name}.jpg", bgr)
    job = wait_for_job(client, client.post("/api/batch", data={"folder": "paired"}).json()["url"])
    assert sorted(r["name"] for r in job["results"]) == ["x", "y"] and not job["errors"]

    write_png(server.root / "paired" / "src" / "z.png", pair(12, 16, seed=3)[0])
    answer = client.post("/api/batch", data={"folder": "paired"})
    assert answer.status_code == 422 and "src/z.png has no matching bgr/z.*" in answer.json()["detail"]


def test_batch_items_over_the_limits_are_reported_and_skipped(client, server):
    big = server.root / "big"
    write_png(big / "bgr" / "plate.png", pair(10, 10, seed=1)[1])
    write_png(big / "src" / "fine.png", pair(10, 10, seed=2)[0])
    (big / "src" / "huge.png").write_bytes(os.urandom(int(MAX_UPLOAD_MB * 1e6) + 10))
    write_png(big / "src" / "wide.png", np.zeros((150, 150, 3), np.uint8))
    job = wait_for_job(client, client.post("/api/batch", data={"folder": "big"}).json()["url"])
    assert [r["name"] for r in job["results"]] == ["fine"]
    errors = {e["name"]: e["error"] for e in job["errors"]}
    assert "src: file is" in errors["huge"] and "the limit is 0.02 MP" in errors["wide"]


def test_batch_folders_cannot_escape_the_root(client, server, tmp_path):
    outside = server.workdir / "outside"
    write_png(outside / "src" / "secret.png", pair(8, 8, seed=0)[0])
    write_png(outside / "bgr" / "secret.png", pair(8, 8, seed=0)[1])
    (server.root / "link").symlink_to(outside, target_is_directory=True)
    write_png(server.root / "sneaky" / "bgr" / "p.png", pair(8, 8, seed=0)[1])
    (server.root / "sneaky" / "src").mkdir()
    (server.root / "sneaky" / "src" / "s.png").symlink_to(outside / "src" / "secret.png")
    for folder in ("..", "../outside", "/etc", str(outside), "link", "sneaky"):
        answer = client.post("/api/batch", data={"folder": folder})
        assert answer.status_code == 403, (folder, answer.text)
        assert "outside the batch root" in answer.json()["detail"]
    assert client.post("/api/batch", data={"folder": "missing"}).status_code == 404


def make_zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_batch_of_an_uploaded_zip(client):
    src1, bgr1 = pair(12, 20, seed=30)
    src2, bgr2 = pair(16, 12, seed=31)
    data = make_zip({"shoot/src/one.png": png(src1), "shoot/src/two.png": png(src2), "shoot/bgr/one.png": png(bgr1),
                     "shoot/bgr/two.png": png(bgr2), "shoot/notes.txt": b"ignored", "__MACOSX/shoot/._one.png": b"x"})
    started = client.post("/api/batch", files={"archive": ("shoot.zip", data, "application/zip")})
    assert started.status_code == 202, started.text
    job = wait_for_job(client, started.json()["url"])
    assert job["status"] == "done" and not job["errors"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(job["archive"]).content))
    assert sorted(archive.namelist()) == ["one.png", "two.png"]
    assert decode(archive.read("two.png")).shape == (16, 12, 4)
    history_ids = {item["id"] for item in client.get("/api/history", params={"limit": 5}).json()["items"]}
    assert {r["id"] for r in job["results"]} <= history_ids


@pytest.mark.parametrize("case, status, words", [
    ("escaping member", 400, "points outside the archive"),
    ("absolute member", 400, "points outside the archive"),
    ("not a zip", 415, "not a zip"),
    ("too many files", 413, "the limit is 8"),
    ("no src folder", 422, "no src/ folder"),
    ("neither", 422, "exactly one of"),
])
def test_bad_batches_get_a_clear_4xx(client, case, status, words):
    image = png(pair(8, 8, seed=0)[0])
    archive = {
        "escaping member": make_zip({"src/a.png": image, "../bgr/a.png": image}),
        "absolute member": make_zip({"src/a.png": image, "/tmp/a.png": image}),
        "not a zip": b"PK but not really a zip file",
        "too many files": make_zip({f"src/{i}.png": image for i in range(9)}),
        "no src folder": make_zip({"photos/a.png": image, "bgr/a.png": image}),
    }.get(case)
    files = {"archive": ("batch.zip", archive)} if archive is not None else None
    answer = client.post("/api/batch", files=files, data={} if archive is not None else {"align": "false"})
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]


def test_unknown_job_is_404(client):
    assert client.get("/api/jobs/" + "f" * 32).status_code == 404
    assert client.get("/api/jobs/" + "f" * 32 + "/archive").status_code == 404


def test_20_concurrent_requests_get_their_own_correct_answers_with_flat_memory(client, server):
    """Distinct inputs (different sizes and pixels); each concurrent answer must equal the same input's answer
    computed alone. Memory after a warm-up round must not grow over three more rounds."""
    inputs = [pair(16 + 4 * (i % 5), 20 + 4 * (i // 5), seed=100 + i) for i in range(20)]
    alone = [decode(post_matte(client, src, bgr, output="pha").content) for src, bgr in inputs]

    def one(index):
        src, bgr = inputs[index]
        with httpx.Client(base_url=server.url, timeout=120) as own:
            response = post_matte(own, src, bgr, output="pha")
        return response.status_code, decode(response.content) if response.status_code == 200 else response.text

    def round_of_20():
        with ThreadPoolExecutor(20) as pool:
            return list(pool.map(one, range(20)))

    round_of_20()  # warm-up: allocator pools, thread pools
    memory_before = server.rss_mb()
    for _ in range(3):
        answers = round_of_20()
        assert [status for status, _ in answers] == [200] * 20, answers
        for index, (_, alpha) in enumerate(answers):
            assert np.array_equal(alpha, alone[index]), f"request {index} got another request's answer"
    growth = server.rss_mb() - memory_before
    print(f"server RSS {memory_before:.0f} MB → {memory_before + growth:.0f} MB over 60 concurrent requests")
    assert growth < 40, f"memory grew by {growth:.0f} MB"
    assert client.get("/healthz").json()["queue"]["pending"] == 0
