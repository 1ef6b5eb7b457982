"""The web page end to end in headless Chromium (Debian's chromium + chromedriver, installed by run.sh's
ensure_browser): upload photo + plate, wait for the result, check what is displayed against the download,
show a refusal, run a zip batch to 100 %, see history. Saves test_artifacts/web_ui.png."""
import io
import time
import zipfile

import cv2
import httpx
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bgmatting.data.io import to_uint8, write_image
from bgmatting.data.synthetic import composite, make_background, make_foreground
from test_serve_cli import ROOT, ServerProcess
from tests.conftest import headless_chrome

ARTIFACTS = ROOT / "test_artifacts"
HEIGHT, WIDTH = 96, 128
WINDOW = (1280, 800)


def photo_and_plate(index):
    """A synthetic photo (a procedural subject over a background) and its clean plate, uint8 RGB."""
    fgr, pha = make_foreground((HEIGHT, WIDTH), np.random.default_rng([7, 1, index]))
    plate = make_background((HEIGHT, WIDTH), np.random.default_rng([7, 2, index]))
    return to_uint8(composite(fgr, pha, plate)), to_uint8(plate)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("serve_ui")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = headless_chrome(window=WINDOW)
    driver.downloads = tmp_path_factory.mktemp("downloads")
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(driver.downloads)})
    yield driver
    driver.quit()


def wait(driver, condition, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def displayed_pixels(driver, element_id):
    """RGBA pixels of a displayed <img> at its natural size, read back through a canvas."""
    flat, width, height = driver.execute_script("""
        const img = document.getElementById(arguments[0]);
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        return [Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data), canvas.width,
                canvas.height];""", element_id)
    return np.array(flat, np.uint8).reshape(height, width, 4)


def test_single_photo_batch_and_history_in_the_browser(server, browser, tmp_path):
    photo, plate = photo_and_plate(0)
    write_image(tmp_path / "photo.png", photo)
    write_image(tmp_path / "plate.png", plate)
    browser.get(server.url)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert browser.find_element(By.ID, "random-warning").is_displayed()
    assert browser.find_element(By.ID, "guide-label").text == "Clean plate"

    # a refusal is shown on the page, not swallowed
    (tmp_path / "notes.png").write_text("not really a picture")
    browser.find_element(By.ID, "src").send_keys(str(tmp_path / "notes.png"))
    browser.find_element(By.ID, "guide").send_keys(str(tmp_path / "plate.png"))
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "status").text.startswith("Error"))
    assert "src: not an image" in browser.find_element(By.ID, "status").text

    # the real upload
    browser.find_element(By.ID, "src").send_keys(str(tmp_path / "photo.png"))
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed())
    assert browser.find_element(By.ID, "status").text == "Done."
    for element_id in ("view-src", "view-pha", "view-com"):
        size = browser.execute_script("const i = document.getElementById(arguments[0]); "
                                      "return [i.naturalWidth, i.naturalHeight, i.complete];", element_id)
        assert size == [WIDTH, HEIGHT, True], element_id
    shown_source = displayed_pixels(browser, "view-src")
    shown_cutout = displayed_pixels(browser, "view-com")
    assert np.array_equal(shown_source[:, :, :3], photo)

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "web_ui.png"
    assert browser.save_screenshot(str(screenshot))
    shot = cv2.imread(str(screenshot))
    assert shot.shape[1] == WINDOW[0] and shot.std() > 10  # the page, not a blank frame

    browser.find_element(By.ID, "download").click()
    downloaded = wait(browser, lambda d: [p for p in d.downloads.glob("com-*.png")] or False, timeout=20)
    time.sleep(0.2)
    saved = cv2.imread(str(downloaded[0]), cv2.IMREAD_UNCHANGED)[:, :, [2, 1, 0, 3]]
    assert saved.shape == (HEIGHT, WIDTH, 4)
    assert np.array_equal(saved[:, :, 3], shown_cutout[:, :, 3])  # the download is what the page showed
    assert saved[:, :, 3].std() > 0
    api_alpha = cv2.imdecode(np.frombuffer(httpx.post(f"{server.url}/api/matte", timeout=60, data={"output": "pha"},
                                                      files={"src": (tmp_path / "photo.png").read_bytes(),
                                                             "bgr": (tmp_path / "plate.png").read_bytes()}).content,
                                           np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(saved[:, :, 3], api_alpha)  # and what the API answers for the same input

    # batch tab: a zip of two photos with one plate each, to 100 %
    archive_path = tmp_path / "shoot.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for index in (1, 2):
            for name, image in zip(("src", "bgr"), photo_and_plate(index)):
                archive.writestr(f"{name}/shot{index}.png", cv2.imencode(".png", image[:, :, ::-1])[1].tobytes())
    browser.find_element(By.ID, "tab-batch").click()
    browser.find_element(By.ID, "archive").send_keys(str(archive_path))
    browser.find_element(By.ID, "batch-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "batch-download").is_displayed())
    assert float(browser.find_element(By.ID, "batch-progress").get_attribute("value")) == 1.0
    assert browser.find_element(By.ID, "batch-text").text == "2 / 2 (done)"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#batch-results .card")) == 2
    zipped = httpx.get(browser.find_element(By.ID, "batch-download").get_attribute("href"))
    assert sorted(zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()) == ["shot1.png", "shot2.png"]

    # history tab: the three results, newest first
    browser.find_element(By.ID, "tab-history").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-list .card")) >= 4)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#history-list .card .name")]
    assert names[:2] == ["shot2", "shot1"] and "photo.png" in names[2:]
    thumbs = browser.execute_script("return Array.from(document.querySelectorAll('#history-list img'))"
                                    ".map(i => i.complete && i.naturalWidth > 0)")
    assert all(thumbs)
