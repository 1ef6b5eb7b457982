"""Issue 13's web items against a real server on 127.0.0.1 (tiny random-weight model): a batch larger than
--keep-results, photos sharing a stem, a symlink swapped in after the POST, the disk budget of queued archives,
hostile folder and member names, stalled uploads, and the access token."""
import io
import socket
import time
import zipfile

import cv2
import httpx
import pytest

from test_serve_api import make_zip, pair, png, wait_for_job, write_png
from test_serve_cli import ServerProcess, run_cli, serve_cli

KEEP_RESULTS = 3
MAX_ARCHIVE_MB = 0.5
DISK_BUDGET_MB = 1.0
IDLE_TIMEOUT = 2.0
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("serve_hardening")
    (workdir / "root").mkdir()
    with ServerProcess(workdir, "--batch-root", str(workdir / "root"), "--keep-results", str(KEEP_RESULTS),
                       "--max-queue", str(KEEP_RESULTS), "--max-archive-mb", str(MAX_ARCHIVE_MB),
                       "--disk-budget-mb", str(DISK_BUDGET_MB),
                       "--upload-idle-timeout", str(IDLE_TIMEOUT)) as running:
        running.root = workdir / "root"
        running.workdir = workdir
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def zip_names(client, job) -> list:
    return sorted(zipfile.ZipFile(io.BytesIO(client.get(job["archive"]).content)).namelist())


def start_blocker(client, server, name: str) -> str:
    """A folder batch that keeps the (one-at-a-time) batch runner busy for seconds; returns its job url."""
    folder = server.root / name
    write_png(folder / "bgr" / "plate.png", pair(320, 320, seed=0)[1])
    for index in range(8):
        write_png(folder / "src" / f"{index}.png", pair(320, 320, seed=index)[0])
    started = client.post("/api/batch", data={"folder": name})
    assert started.status_code == 202, started.text
    return started.json()["url"]


def assert_still_queued(client, url):
    job = client.get(url).json()
    assert job["status"] == "queued", f"the blocker finished too early to test anything: {job['status']}"


def test_a_batch_larger_than_keep_results_keeps_its_results_until_downloaded(client, server):
    folder = server.root / "five"
    write_png(folder / "bgr" / "plate.png", pair(8, 8, seed=1)[1])
    for index in range(5):
        write_png(folder / "src" / f"p{index}.png", pair(8, 8, seed=10 + index)[0])
    job = wait_for_job(client, client.post("/api/batch", data={"folder": "five"}).json()["url"])
    assert (job["status"], job["error"], len(job["results"])) == ("done", None, 5), job
    for result in job["results"]:
        assert client.get(result["links"]["com"]).status_code == 200
    assert zip_names(client, job) == [f"p{index}.png" for index in range(5)]

    src, bgr = pair(8, 8, seed=2)  # downloaded: the job's results are ordinary old results now
    client.post("/api/matte", files={"src": ("a.png", png(src)), "bgr": ("b.png", png(bgr))}).raise_for_status()
    assert client.get(job["results"][0]["links"]["com"]).status_code == 404


def test_photos_sharing_a_stem_are_separate_items(client, server):
    folder = server.root / "stems"
    src = pair(12, 16, seed=3)[0]
    write_png(folder / "bgr" / "plate.png", pair(12, 16, seed=4)[1])
    write_png(folder / "src" / "a.png", src)
    (folder / "src" / "a.jpg").write_bytes(cv2.imencode(".jpg", src[:, :, ::-1])[1].tobytes())
    (folder / "src" / "a.webp").write_bytes(cv2.imencode(".webp", src[:, :, ::-1])[1].tobytes())
    write_png(folder / "src" / "b.png", src)
    started = client.post("/api/batch", data={"folder": "stems"})
    assert started.status_code == 202 and started.json()["total"] == 4, started.text
    job = wait_for_job(client, started.json()["url"])
    assert sorted(r["name"] for r in job["results"]) == ["a.jpg", "a.png", "a.webp", "b"] and not job["errors"]
    assert zip_names(client, job) == ["a.jpg.png", "a.png.png", "a.webp.png", "b.png"]


def test_a_symlink_swapped_in_after_the_post_is_not_followed(client, server):
    outside = server.workdir / "secrets"
    write_png(outside / "secret.png", pair(8, 8, seed=5)[0])
    write_png(outside / "dir" / "c.png", pair(8, 8, seed=6)[0])
    victim = server.root / "victim"
    write_png(victim / "bgr" / "plate.png", pair(8, 8, seed=7)[1])
    for name in ("a", "b", "sub/c"):
        write_png(victim / "src" / f"{name}.png", pair(8, 8, seed=8)[0])
    blocker = start_blocker(client, server, "blocker1")
    started = client.post("/api/batch", data={"folder": "victim"})
    assert started.status_code == 202 and started.json()["total"] == 3, started.text
    (victim / "src" / "b.png").unlink()  # a file → a link to a file outside the root
    (victim / "src" / "b.png").symlink_to(outside / "secret.png")
    (victim / "src" / "sub" / "c.png").unlink()  # a folder on the way → a link to a folder outside
    (victim / "src" / "sub").rmdir()
    (victim / "src" / "sub").symlink_to(outside / "dir", target_is_directory=True)
    assert_still_queued(client, started.json()["url"])

    job = wait_for_job(client, started.json()["url"], timeout=180)
    assert [r["name"] for r in job["results"]] == ["a"], job
    errors = {e["name"]: e["error"] for e in job["errors"]}
    assert set(errors) == {"b", "sub/c"} and all("symlink" in error for error in errors.values()), errors
    wait_for_job(client, blocker, timeout=180)


def test_queued_archives_are_bounded_by_the_disk_budget(client, server):
    def shoot(seed):  # ~0.28 MB of incompressible pixels, stored
        members = {f"src/{i}.png": png(pair(150, 150, seed=seed + i)[0]) for i in range(3)}
        members["bgr/plate.png"] = png(pair(150, 150, seed=seed)[1])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return {"archive": ("shoot.zip", buffer.getvalue(), "application/zip")}

    blocker = start_blocker(client, server, "blocker2")
    accepted, refused = [], None
    for attempt in range(5):
        answer = client.post("/api/batch", files=shoot(100 * attempt))
        if answer.status_code == 503:
            refused = answer
            break
        assert answer.status_code == 202, answer.text
        accepted.append(answer.json()["url"])
    assert refused is not None, f"{len(accepted)} archives queued without reaching the disk budget"
    assert accepted and int(refused.headers["retry-after"]) > 0 and "disk budget" in refused.json()["detail"]
    on_disk = sum(p.stat().st_size for p in (server.workdir / "storage" / "uploads").rglob("*") if p.is_file())
    assert on_disk <= DISK_BUDGET_MB * 1e6
    assert_still_queued(client, accepted[-1])

    for url in [blocker, *accepted]:
        assert wait_for_job(client, url, timeout=180)["status"] == "done"
    answer = client.post("/api/batch", files=shoot(1000))  # finished jobs gave their space back
    assert answer.status_code == 202, answer.text
    wait_for_job(client, answer.json()["url"])


@pytest.mark.parametrize("folder, words", [
    ("\x00", "control character"),
    ("shoot\x00/src", "control character"),
    ("x" * 5000, "too long"),
    ("a/" * 3000, "too long"),
    ("a" * 300, "longer than 255 bytes"),
])
def test_hostile_folder_names_get_a_clear_400(client, folder, words):
    answer = client.post("/api/batch", data={"folder": folder})
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["detail"] and len(answer.json()["detail"]) < 300


@pytest.mark.parametrize("members, words", [
    (["src/a.png", "src/a.png/b.png", "bgr/a.png"], "both a file and a folder"),
    (["src/a.png/b.png", "src/a.png", "bgr/a.png"], "both a file and a folder"),
    ([f"src/{'n' * 300}.png", "bgr/a.png"], "longer than 255 bytes"),
])
def test_hostile_zip_members_get_a_clear_400(client, server, members, words):
    uploads = server.workdir / "storage" / "uploads"
    before = set(uploads.iterdir())
    image = png(pair(8, 8, seed=9)[0])
    answer = client.post("/api/batch", files={"archive": ("x.zip", make_zip(dict.fromkeys(members, image)))})
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["detail"]
    assert set(uploads.iterdir()) <= before  # its unpacking folder is gone


def test_a_stalled_upload_is_dropped_and_blocks_nobody(client, server):
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        stalled.sendall(b"POST /api/matte HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                        b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n--xyz\r\n")
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < IDLE_TIMEOUT  # answered while the upload stalls
        stalled.settimeout(15)
        answer = b""
        while chunk := stalled.recv(4096):  # until the server closes the connection
            answer += chunk
    finally:
        stalled.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"stalled" in answer, answer


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("serve_token"), token=TOKEN) as running:
        yield running


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/static/app.js"), ("GET", "/healthz"), ("GET", "/openapi.json"),
    ("GET", "/api/history"), ("GET", "/api/results/" + "0" * 32), ("POST", "/api/matte"), ("POST", "/api/batch"),
])
def test_every_endpoint_needs_the_token(locked_server, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "bgmatting_token=wrong"}):
        answer = httpx.request(method, locked_server.url + path, headers=headers, files={"src": ("a.png", b"x")}
                               if method == "POST" else None)
        assert answer.status_code == 401, (path, headers)
        assert "token" in answer.json()["detail"] and answer.headers["www-authenticate"] == "Bearer"


def test_the_token_works_as_header_query_or_cookie(locked_server):
    url = locked_server.url
    assert httpx.get(f"{url}/api/history", headers=locked_server.headers).status_code == 200
    page = httpx.get(f"{url}/", params={"token": TOKEN})
    assert page.status_code == 200 and 'id="matte-form"' in page.text
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"bgmatting_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    with httpx.Client(base_url=url, cookies=page.cookies) as browser_like:
        assert browser_like.get("/api/history").status_code == 200
        assert browser_like.get("/static/app.js").status_code == 200


def test_server_flags_for_token_budget_and_timeout(capsys, tmp_path, monkeypatch):
    base = ["--allow-random-weights", "--storage-dir", str(tmp_path)]
    monkeypatch.setenv(serve_cli.TOKEN_ENV, "from-env")
    parse = serve_cli.build_parser().parse_args
    assert serve_cli.settings_from_args(parse(base)).auth_token == "from-env"
    settings = serve_cli.settings_from_args(parse([*base, "--auth-token", "Tok3n-flag", "--disk-budget", "1500"]))
    assert settings.auth_token == "Tok3n-flag" and settings.disk_budget_bytes == 1_500_000_000
    assert "Tok3n" not in repr(settings)
    for flags, named in ((["--disk-budget-mb", "100"], "--disk-budget-mb"),
                         (["--upload-idle-timeout", "0"], "--upload-idle-timeout"),
                         (["--auth-token", " "], "--auth-token"), (["--auth-token", "a;b"], "--auth-token")):
        code, lines = run_cli([*base, *flags], capsys)
        assert code == 2 and len(lines) == 1 and named in lines[0], lines
