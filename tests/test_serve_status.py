"""The web app's status tab and batch summary: GET /api/status (model kind, checkpoint, settings, provenance,
runtime and threads, versions, device, batches run) and each job's summary (total, succeeded, failed, mean seconds
per image), through the API and in headless Chromium."""
import io
import shutil
import time
import zipfile

import cv2
import httpx
import numpy as np
import pytest

from bgmatting.serve.jobs import Job, summarise
from test_serve_cli import ServerProcess
from tests.conftest import headless_chrome

HEIGHT, WIDTH = 48, 64


def png(image):
    return cv2.imencode(".png", image[:, :, ::-1])[1].tobytes()


def batch_zip(bad: bool = True) -> bytes:
    """src/ + bgr/ of two good pairs and (``bad``) one whose plate has another size."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(2):
            for folder in ("src", "bgr"):
                archive.writestr(f"{folder}/shot{index}.png", png(rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)))
        if bad:
            archive.writestr("src/shot9.png", png(rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)))
            archive.writestr("bgr/shot9.png", png(rng.integers(0, 256, (HEIGHT // 2, WIDTH, 3), np.uint8)))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("serve_status")) as running:
        yield running


def run_batch(server) -> dict:
    started = httpx.post(f"{server.url}/api/batch", files={"archive": ("shoot.zip", batch_zip(), "application/zip")},
                         timeout=60).json()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}{started['url']}", timeout=30).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError("the batch did not finish")


def test_status_describes_model_runtime_versions(server):
    status = httpx.get(f"{server.url}/api/status", timeout=30).json()
    model = status["model"]
    assert model["kind"] == "mattingbase" and model["random_weights"] is True and model["checkpoint"] is None
    assert model["options"]["backbone"] == "mobilenetv2" and model["guide"] == "bgr"
    # the fastest installed runtime (tools/serve.py passes backend=None): onnxruntime here
    assert status["runtime"]["backend"] == "onnx (onnxruntime)" and status["runtime"]["device"] == "cpu"
    assert status["runtime"]["cpu_count"] >= 1
    versions = status["versions"]
    assert versions["paddle"] and versions["bgmatting"] and versions["python"]
    assert set(status["batches"]) == {"jobs", "total", "succeeded", "failed", "mean_seconds"}
    assert "/api/status" in httpx.get(f"{server.url}/openapi.json", timeout=30).json()["paths"]


def test_batch_summary_in_the_job_and_the_status(server):
    before = httpx.get(f"{server.url}/api/status", timeout=30).json()["batches"]
    job = run_batch(server)
    assert job["status"] == "done"
    summary = job["summary"]
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (3, 2, 1)
    assert summary["mean_seconds"] > 0
    after = httpx.get(f"{server.url}/api/status", timeout=30).json()["batches"]
    assert after["jobs"] == before["jobs"] + 1 and after["failed"] == before["failed"] + 1
    assert after["succeeded"] == before["succeeded"] + 2


def test_summaries_of_jobs_without_results():
    job = Job([], "nothing", False, None)
    assert job.summary() == dict(total=0, succeeded=0, failed=0, mean_seconds=None)
    job.results = [dict(name="a", id="1", seconds=1.0), dict(name="b", id="2", seconds=3.0)]
    job.errors = [dict(name="c", error="bad")]
    job.total = 3
    assert job.summary()["mean_seconds"] == 2.0
    assert summarise([job, Job([], "empty", False, None)]) == dict(jobs=2, total=3, succeeded=2, failed=1,
                                                                    mean_seconds=2.0)


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs chromium + chromedriver (./run.sh test installs them)")
def test_status_tab_and_batch_summary_in_the_browser(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chrome()
    wait = lambda condition: WebDriverWait(browser, 60, poll_frequency=0.1).until(lambda d: condition(d))  # noqa
    try:
        browser.get(server.url)
        wait(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        (tmp_path / "shoot.zip").write_bytes(batch_zip())
        browser.find_element(By.ID, "tab-batch").click()
        browser.find_element(By.ID, "archive").send_keys(str(tmp_path / "shoot.zip"))
        browser.find_element(By.ID, "batch-submit").click()
        wait(lambda d: "(done)" in d.find_element(By.ID, "batch-text").text)
        summary = browser.find_element(By.ID, "batch-summary").text
        assert summary.startswith("3 image(s): 2 succeeded, 1 failed, ") and summary.endswith(" s per image")

        browser.find_element(By.ID, "tab-server").click()
        wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#server-facts tr[data-fact='batches']"))
        facts = {row.get_attribute("data-fact"): row.find_element(By.TAG_NAME, "td").text
                 for row in browser.find_elements(By.CSS_SELECTOR, "#server-facts tr")}
        assert facts["model"] == "mattingbase (random weights)" and facts["device"] == "cpu"
        assert "backbone=mobilenetv2" in facts["settings"] and facts["runtime"].startswith("onnx")
        assert "paddle " in facts["versions"] and "CPUs" in facts["threads"]
        assert "succeeded" in facts["batches"] and "failed" in facts["batches"]
        assert browser.find_element(By.ID, "server").is_displayed()
        assert not browser.find_element(By.ID, "single").is_displayed()
    finally:
        browser.quit()
