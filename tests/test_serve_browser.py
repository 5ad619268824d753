"""The `gemner serve` page in a real browser: Debian's headless Chromium, driven by selenium through
Debian's chromedriver (nothing is downloaded). It loads the page, submits a post with an image, and
checks the highlighted entities, their boxes and a heat-map toggle in the DOM; the screenshot is kept
as a test artefact (in $GEMNER_TEST_ARTEFACTS when set, else pytest's temporary folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from gemner.pipeline.gem import GEM  # noqa: E402
from gemner.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import POST, picture, running, tiny_pipeline_config  # noqa: E402

pytestmark = pytest.mark.browser
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for a browser or driver online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1100,1300", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory, wide_encoder_dir, tiny_causal_lm):
    gem = GEM(tiny_pipeline_config(tmp_path_factory, wide_encoder_dir, tiny_causal_lm))
    with running(create_app(gem.config, ServeSettings(), build=lambda _config: gem)) as url:
        yield url


def test_the_page_tags_a_post_and_draws_its_boxes(browser, server, tmp_path):
    image = picture(tmp_path / "post.png", size=(480, 320))
    expected = httpx.post(f"{server}/v1/entities", json={"text": POST}).json()["entities"]
    assert expected, "the tiny recogniser finds entities in the post"

    browser.get(server + "/")
    WebDriverWait(browser, 20).until(ec.text_to_be_present_in_element((By.ID, "stages"), "pipeline tiny"))
    browser.find_element(By.ID, "text").send_keys(POST)
    browser.find_element(By.ID, "image").send_keys(str(image))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(ec.visibility_of_element_located((By.ID, "result")))
    assert browser.find_element(By.ID, "status").text == f"{len(expected)} entities"

    marks = browser.find_elements(By.CSS_SELECTOR, "#tagged mark.entity")
    shown = [(m.get_attribute("data-type"), m.get_attribute("data-coarse")) for m in marks]
    assert shown == [(e["type"], e["coarse"]) for e in expected]  # the same entities as the API, in order
    for mark, entity in zip(marks, expected, strict=True):
        label = f"{entity['type']} · {entity['coarse']}".upper()
        assert mark.text.startswith(entity["text"]) and mark.text.endswith(label)
        assert mark.get_attribute("title").startswith(f"{entity['type']} ({entity['coarse']}) · score 0.")
    assert "Obama visits" in browser.find_element(By.ID, "tagged").text or expected[0]["text"] != "Obama"

    boxes = browser.find_elements(By.CSS_SELECTOR, "#overlays .box")
    assert len(boxes) == len(expected)  # the grounder (threshold 0) boxes every entity
    heat = browser.find_element(By.CSS_SELECTOR, '.heat[data-index="0"]')
    assert not heat.is_displayed()
    browser.find_element(By.CSS_SELECTOR, 'input.heat-toggle[data-index="0"]').click()
    assert heat.is_displayed()

    folder = Path(os.environ.get("GEMNER_TEST_ARTEFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "serve-page.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as picture_taken:
        assert picture_taken.size[0] >= 800 and len(picture_taken.getcolors(1 << 20) or []) > 20


def test_an_error_is_shown_with_its_request_id(browser, server):
    browser.get(server + "/")
    assert not browser.find_element(By.ID, "figure").is_displayed()  # no image, no empty picture frame
    browser.execute_script("document.getElementById('text').value = arguments[0]", "word " * 1100)  # too long
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 20).until(ec.text_to_be_present_in_element((By.ID, "status"), "request"))
    status = browser.find_element(By.ID, "status")
    assert status.text.startswith("422: `text` has") and "error" in status.get_attribute("class")
