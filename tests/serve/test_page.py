"""The page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
driven by Selenium, against a real server, uploading a real GTZAN excerpt.

Selenium is pointed at /usr/bin/chromedriver and /usr/bin/chromium so Selenium Manager never
downloads a browser or a driver. Skipped (with the reason) only when they are not installed.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import gtzan_file
from tests.live.pulse import virtual_mic  # noqa: F401 (fixture)
from tests.serve.server import default_model, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("EDGE_GENRE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("EDGE_GENRE_CHROMEDRIVER", "/usr/bin/chromedriver"))
#: Optional copy of the screenshot for people to look at (the test's own is in its tmp dir).
SCREENSHOT_COPY = os.environ.get("EDGE_GENRE_SCREENSHOT")
WAIT = 60
PHONE_WIDTH = 412


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install 'edge-genre[dev]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.is_file():
            pytest.skip(f"{path} not found: the browser test needs 'apt install chromium "
                        f"chromium-driver' ({package})")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    # A phone's screen (headless windows cannot be narrower than 500 px; emulation can).
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
        "width": PHONE_WIDTH, "height": 1000, "pixelRatio": 1.0, "touch": True}})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait_visible(driver, element_id: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(ec.visibility_of_element_located((By.ID, element_id)))


def upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "file-input").send_keys(str(path))


def test_upload_shows_genre_bars_and_timeline(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.serve.server import get_json, post_file

    labels = get_json(server.url + "api/model")["labels"]
    browser.get(server.url)
    wait_visible(browser, "drop")
    path = gtzan_file("metal.00002")
    upload(browser, path)
    wait_visible(browser, "result")
    assert not browser.find_element(By.ID, "busy").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed()

    genre = browser.find_element(By.ID, "genre")
    assert genre.tag_name == "strong"
    assert int(genre.value_of_css_property("font-weight")) >= 700
    _, expected = post_file(server.url + "api/classify", path.name, path.read_bytes())
    assert genre.text.lower() == expected["genre"]

    bars = browser.find_elements(By.CSS_SELECTOR, "#bars li.bar")
    assert len(bars) == 10 == len(labels)
    assert {b.get_attribute("data-genre") for b in bars} == set(labels)
    widths = [b.find_element(By.CLASS_NAME, "fill").size["width"] for b in bars]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0  # most likely first
    assert bars[0].get_attribute("data-genre") == expected["genre"]

    segments = browser.find_elements(By.CSS_SELECTOR, "#timeline .seg")
    assert len(segments) == len(expected["window_decisions"]) == 14
    assert [s.get_attribute("data-genre") for s in segments] == \
        [w["genre"] for w in expected["window_decisions"]]
    # Nothing wider than the phone screen.
    assert browser.execute_script("return window.innerWidth") == PHONE_WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE_WIDTH

    shot = tmp_path / "serve-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if SCREENSHOT_COPY:
        Path(SCREENSHOT_COPY).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT_COPY)


def test_bad_file_shows_the_error_and_classify_another_works(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    wait_visible(browser, "drop")
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio\n" * 100)
    upload(browser, bad)
    message = wait_visible(browser, "error").text
    assert "notes.txt" in message and "WAV" in message
    assert not browser.find_element(By.ID, "result").is_displayed()

    upload(browser, gtzan_file("classical.00051"))  # a second try from the same page
    wait_visible(browser, "result")
    assert not browser.find_element(By.ID, "error").is_displayed()
    first = browser.find_element(By.ID, "result-file").text
    assert "classical.00051" in first

    # "Classify another" is one click: it clears the result and opens the picker.
    browser.find_element(By.ID, "again").click()
    assert not browser.find_element(By.ID, "result").is_displayed()
    upload(browser, gtzan_file("jazz.00002"))
    wait_visible(browser, "result")
    assert "jazz.00002" in browser.find_element(By.ID, "result-file").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bars li.bar")) == 10


def test_live_tab_shows_the_servers_error(browser, server):
    """With --no-mic the Live tab says so, from the server's own error event."""
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    browser.find_element(By.ID, "tab-live").click()
    browser.find_element(By.ID, "live-toggle").click()
    message = wait_visible(browser, "live-error").text
    assert "--no-mic" in message
    assert browser.find_element(By.ID, "live-toggle").text == "Start listening"


def test_oversize_file_is_refused_on_the_page(browser, default_model, tmp_path):
    """A file over the server's limit gets the limit's message, and the page goes on."""
    from selenium.webdriver.common.by import By

    from tests.serve.server import start_server

    srv = start_server(default_model, tmp_path / "serve.log", "--no-mic", "--max-upload-mb", "1")
    try:
        browser.get(srv.url)
        wait_visible(browser, "drop")
        wait_for_text(browser, "limits", "1 MB")
        upload(browser, gtzan_file("jazz.00002"))  # 1.3 MB
        assert "larger than the 1 MB limit" in wait_visible(browser, "error").text
        from edge_genre.edge.audio import read, to_mono

        from tests.serve.server import wav_bytes

        audio = read(gtzan_file("blues.00089"))  # GTZAN's .au, cut to 10 s: 0.44 MB
        short = tmp_path / "blues-10s.wav"
        short.write_bytes(wav_bytes(to_mono(audio.samples)[:audio.sample_rate * 10], audio.sample_rate))
        upload(browser, short)
        wait_visible(browser, "result")
        assert not browser.find_element(By.ID, "error").is_displayed()
    finally:
        srv.stop()


def wait_for_text(driver, element_id: str, text: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(ec.text_to_be_present_in_element((By.ID, element_id), text))


@pytest.mark.live
def test_live_tab_follows_the_servers_microphone(browser, virtual_mic, default_model, tmp_path):
    """Live tab on a server whose microphone (a virtual one) hears a real excerpt."""
    from selenium.webdriver.common.by import By

    from tests.serve.server import start_server

    srv = start_server(default_model, tmp_path / "serve.log", "--device", virtual_mic.device,
                       env=virtual_mic.env)
    player = virtual_mic.play(gtzan_file("metal.00002"))
    try:
        browser.get(srv.url)
        browser.find_element(By.ID, "tab-live").click()
        browser.find_element(By.ID, "live-toggle").click()
        wait_visible(browser, "live-result")
        wait_for_count(browser, "#live-timeline .seg", 3)
        genre = browser.find_element(By.ID, "live-genre")
        assert genre.tag_name == "strong" and genre.text
        assert len(browser.find_elements(By.CSS_SELECTOR, "#live-bars li.bar")) == 10
        assert "dBFS" in browser.find_element(By.ID, "live-meta").text
        browser.save_screenshot(str(tmp_path / "serve-live.png"))
        browser.find_element(By.ID, "live-toggle").click()  # stop: the page leaves the stream
        assert browser.find_element(By.ID, "live-toggle").text == "Start listening"
    finally:
        player.kill()
        srv.stop()


def wait_for_count(driver, selector: str, n: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, selector)) >= n)
