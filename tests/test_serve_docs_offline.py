"""/docs (Swagger UI) and /redoc load with no network: every asset comes from this server (fastapi-offline's copy),
and in headless Chromium that cannot resolve any other host the Swagger page shows the endpoints."""
import re
import shutil

import httpx
import pytest

from test_serve_cli import ServerProcess
from tests.conftest import headless_chrome


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("serve_docs")) as running:
        yield running


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_this_server(server, page):
    html = httpx.get(server.url + page, timeout=30).text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""", html)
    urls = [a or b for a, b in urls]
    assert urls, html[:500]
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        assert httpx.get(server.url + url, timeout=30).status_code == 200, url
    assert "cdn" not in html.lower()


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs chromium + chromedriver (./run.sh test installs them)")
def test_swagger_ui_shows_the_endpoints_with_no_network(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chrome("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")  # no host but this one
    try:
        browser.get(server.url + "/docs")
        WebDriverWait(browser, 60, poll_frequency=0.2).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= 5)
        paths = {e.get_attribute("data-path") or e.text
                 for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        for path in ("/api/matte", "/api/batch", "/api/status", "/healthz"):
            assert any(path in shown for shown in paths), (path, paths)
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(url.startswith(server.url) for url in loaded), loaded
    finally:
        browser.quit()
