"""Video upload in the web app: a clip with its plate (or plate=auto) as a job with progress, result videos com.mp4
and pha.mp4 (+ the estimated plate), refusals; through the API and in headless Chromium."""
import shutil
import time

import cv2
import httpx
import numpy as np
import pytest

from bgmatting.data.synthetic import composite, item_rng, make_background, make_foreground
from test_serve_cli import ServerProcess
from tests.conftest import headless_chrome, read_video_frames

SIZE = (48, 64)  # (H, W)
FRAMES = 8


def write_clip(path, frames, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """ROOT/clip.mp4: a subject moving across a background (8 frames); ROOT/plate.png: the background."""
    root = tmp_path_factory.mktemp("clip")
    rng = item_rng(3, "plate", 0)
    fgr, pha = make_foreground(SIZE, rng)
    background = make_background(SIZE, rng)
    frames = [(composite(np.roll(fgr, 6 * i, axis=1), np.roll(pha, 6 * i, axis=1), background) * 255).round()
              .astype(np.uint8) for i in range(FRAMES)]
    write_clip(root / "clip.mp4", frames)
    cv2.imwrite(str(root / "plate.png"), (background[:, :, ::-1] * 255).round().astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("serve_video")) as running:
        yield running


def upload(server, clip_path, plate_path=None, **form):
    files = {"video": (clip_path.name, clip_path.read_bytes(), "video/mp4")}
    if plate_path is not None:
        files["bgr"] = (plate_path.name, plate_path.read_bytes(), "image/png")
    return httpx.post(f"{server.url}/api/video", files=files, data=form, timeout=60)


def wait_job(server, url, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(server.url + url, timeout=30).json()
        if job["status"] not in ("queued", "running"):
            return job
        assert 0.0 <= job["progress"] <= 1.0
        time.sleep(0.2)
    raise AssertionError("the video job did not finish")


def test_clip_with_plate_gives_com_and_pha_videos(server, clip, tmp_path):
    answer = upload(server, clip / "clip.mp4", clip / "plate.png")
    assert answer.status_code == 202, answer.text
    job = wait_job(server, answer.json()["url"])
    assert job["status"] == "done", job
    assert (job["done"], job["total"], job["progress"]) == (FRAMES, FRAMES, 1.0)
    assert set(job["links"]) == {"com", "pha"} and job["fps"] == pytest.approx(10.0)
    for kind in ("com", "pha"):
        response = httpx.get(server.url + job["links"][kind] + "?download=true", timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        assert f'filename="{kind}-' in response.headers["content-disposition"]
        (tmp_path / f"{kind}.mp4").write_bytes(response.content)
        frames = read_video_frames(tmp_path / f"{kind}.mp4")
        assert len(frames) == FRAMES and frames[0].shape[:2] == SIZE, kind


def test_auto_plate_is_estimated_and_served(server, clip):
    answer = upload(server, clip / "clip.mp4", plate="auto")
    job = wait_job(server, answer.json()["url"])
    assert job["status"] == "done" and job["auto_plate"] is True, job
    plate = httpx.get(server.url + job["links"]["plate"], timeout=30)
    decoded = cv2.imdecode(np.frombuffer(plate.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == SIZE


def test_refusals_and_failed_jobs(server, clip, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    refused = upload(server, text, clip / "plate.png")
    assert refused.status_code == 415 and "not one of" in refused.json()["detail"]
    refused = upload(server, clip / "clip.mp4")
    assert refused.status_code == 422 and "plate=auto" in refused.json()["detail"]
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 10)
    failed = wait_job(server, upload(server, fake, clip / "plate.png").json()["url"])
    assert failed["status"] == "failed" and "video" in failed["error"]
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((SIZE[0] // 2, SIZE[1], 3), np.uint8))
    failed = wait_job(server, upload(server, clip / "clip.mp4", small).json()["url"])
    assert failed["status"] == "failed" and "size mismatch" in failed["error"]
    assert httpx.get(f"{server.url}/api/videos/{failed['id']}/com.mp4", timeout=30).status_code == 404
    assert httpx.get(f"{server.url}/api/videos/nope", timeout=30).status_code == 404


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs chromium + chromedriver (./run.sh test installs them)")
def test_video_upload_end_to_end_in_the_browser(server, clip, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chrome()
    wait = lambda condition: WebDriverWait(browser, 120, poll_frequency=0.2).until(lambda d: condition(d))  # noqa
    try:
        browser.get(server.url)
        wait(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        browser.find_element(By.ID, "tab-video").click()
        browser.find_element(By.ID, "video-file").send_keys(str(clip / "clip.mp4"))
        browser.find_element(By.ID, "video-plate").send_keys(str(clip / "plate.png"))
        browser.find_element(By.ID, "video-submit").click()
        wait(lambda d: d.find_element(By.ID, "video-download-com").is_displayed())
        assert browser.find_element(By.ID, "video-text").text.startswith(f"{FRAMES} frames done in ")
        assert float(browser.find_element(By.ID, "video-progress").get_attribute("value")) == 1.0
        for kind in ("com", "pha"):
            link = browser.find_element(By.ID, f"video-download-{kind}").get_attribute("href")
            (tmp_path / f"{kind}.mp4").write_bytes(httpx.get(link, timeout=30).content)
            assert len(read_video_frames(tmp_path / f"{kind}.mp4")) == FRAMES, kind
        assert not browser.find_element(By.ID, "video-plate-link").is_displayed()

        # no plate: estimated from the clip, and shown as a link
        browser.find_element(By.ID, "video-auto").click()
        assert browser.find_element(By.ID, "video-plate").get_attribute("disabled") == "true"
        browser.find_element(By.ID, "video-submit").click()
        wait(lambda d: d.find_element(By.ID, "video-plate-link").is_displayed())
        plate = httpx.get(browser.find_element(By.ID, "video-plate-link").get_attribute("href"), timeout=30)
        assert plate.status_code == 200 and plate.headers["content-type"] == "image/png"
    finally:
        browser.quit()
