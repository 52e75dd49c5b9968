"""The page on a server that needs a token, in headless Chromium (as tests/serve/test_page.py).

Opened as the address ``edge-genre serve`` printed (``/?token=...``), the page gets the token as a
cookie and everything works: the model line, an upload of a real excerpt, the live stream. Opened
without it, the page says why the server refuses it.
"""
from __future__ import annotations

import pytest

from tests.conftest import gtzan_file
from tests.serve.server import default_model, start_server  # noqa: F401 (fixture)
from tests.serve.test_page import browser, upload, wait_for_text, wait_visible  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def token_server(default_model, tmp_path_factory):
    srv = start_server(default_model, tmp_path_factory.mktemp("serve-page-token") / "serve.log",
                       "--no-mic", "--host", "0.0.0.0")
    srv.url = f"http://127.0.0.1:{srv.port}/"  # it printed 0.0.0.0: reach it on loopback
    yield srv
    srv.stop()


def test_page_opened_with_the_token_works(browser, token_server):
    from selenium.webdriver.common.by import By

    assert token_server.token
    browser.delete_all_cookies()
    browser.get(f"{token_server.url}?token={token_server.token}")
    assert browser.current_url == token_server.url  # the token is not left in the address bar
    wait_for_text(browser, "limits", "50 MB")
    upload(browser, gtzan_file("metal.00002"))
    wait_visible(browser, "result")
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#bars li.bar")) == 10
    # The live stream is let through too: the server's own --no-mic error, not a refusal.
    browser.find_element(By.ID, "tab-live").click()
    browser.find_element(By.ID, "live-toggle").click()
    assert "--no-mic" in wait_visible(browser, "live-error").text


def test_page_without_the_token_says_so(browser, token_server):
    from selenium.webdriver.common.by import By

    browser.get(token_server.url)
    browser.delete_all_cookies()
    browser.get(token_server.url)
    assert "token" in wait_visible(browser, "error").text
    browser.find_element(By.ID, "tab-live").click()
    browser.find_element(By.ID, "live-toggle").click()
    wait_for_text(browser, "live-status", "refused")
    assert browser.find_element(By.ID, "live-toggle").text == "Start listening"
