"""The web app in a real browser (Debian's chromium + chromium-driver, driven by Selenium)
against a real `amberlite serve` on localhost: search and see thumbnails, play a cut, accept
a pair and find it in the EDL, draw a box with a comment and read it back through the API.

Without the browser these tests are skipped with the reason (``make test`` installs it with
apt-get when run as root)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import urllib.parse

import pytest

from tests.serve_support import served_store, server  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    SELENIUM = True
except ImportError:
    SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER and SELENIUM),
    reason="BROWSER TESTS SKIPPED: need Debian's chromium and chromium-driver "
    "(`apt-get install -y chromium chromium-driver`, done by `make test` as root) and selenium "
    f"(found: chromium={CHROMIUM}, chromedriver={DRIVER}, selenium={SELENIUM})",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,1000",
]
TIMECODE = re.compile(r"\d\d:\d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="amberlite-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


@pytest.fixture(scope="module")
def app(browser, server):
    browser.get(server.url + "/")
    wait(browser, lambda d: css(d, "#status")[0].text == "2 assets")
    return browser


def test_search_shows_a_grid_of_shot_thumbnails_with_timecodes(app):
    css(app, "#run")[0].click()
    wait(app, lambda d: len(css(d, ".card.shot")) == 6)
    loaded = """return [...document.querySelectorAll('.card.shot img')]
                .every(i => i.complete && i.naturalWidth > 0)"""
    wait(app, lambda d: d.execute_script(loaded))
    first = css(app, ".card.shot")[0].text
    assert "film1/0" in first and "00:00:00:00 – 00:00:01:00" in first
    assert all(TIMECODE.search(c.text) for c in css(app, ".card.shot"))


def test_a_cut_plays_and_an_accepted_pair_is_exported(app, server):
    app.get(server.url + "/#review")
    wait(app, lambda d: len(css(d, ".pair")) > 0)
    pair = css(app, ".pair")[0]
    a, b = pair.get_attribute("data-a"), pair.get_attribute("data-b")
    app.execute_script("const v = document.querySelector('.pair video'); v.muted = true; v.play()")
    playing = "return document.querySelector('.pair video').currentTime"
    wait(app, lambda d: d.execute_script(playing) > 0.3)
    css(pair, "button.accept")[0].click()
    wait(app, lambda d: css(d, ".pair .decision")[0].text == "accepted")

    status, reviews = server.json("GET", "/v1/matchcuts/reviews")
    assert {"a": a, "b": b, "decision": "accept"}.items() <= next(
        r for r in reviews["reviews"] if (r["a"], r["b"]) == (a, b)
    ).items()
    status, _, edl = server.request("GET", "/v1/matchcuts/export.edl")
    text = edl.decode()
    assert status == 200 and text.startswith("TITLE:")
    assert f"* FROM CLIP NAME: {a.split('/')[0]}" in text
    assert f"* FROM CLIP NAME: {b.split('/')[0]}" in text
    status, _, otio = server.request("GET", "/v1/matchcuts/export.otio")
    names = [c["name"] for t in json.loads(otio)["tracks"]["children"] for c in t["children"]]
    assert any(n.endswith(f"A: {a.split('/')[0]}") for n in names)


def test_draw_a_box_with_a_comment_and_read_it_back(app, server):
    from selenium.webdriver.common.action_chains import ActionChains

    app.get(server.url + "/#shot/film1/1")
    wait(app, lambda d: d.execute_script("return document.querySelector('#shot-video').readyState")
         >= 2)  # fmt: skip
    # the asset's own file plays (no transcode), from the shot's start at 1.0 s
    src = app.execute_script("return document.querySelector('#shot-video').currentSrc")
    assert "/v1/assets/" in src and src.endswith("/video#t=1.0,2.0"), src
    at = app.execute_script("return document.querySelector('#shot-video').currentTime")
    assert at == pytest.approx(1.0, abs=0.05)
    app.execute_script("const v = document.querySelector('#shot-video'); v.currentTime = 1.4")
    wait(app, lambda d: d.execute_script("return !document.querySelector('#shot-video').seeking"))
    css(app, "#draw")[0].click()
    overlay = css(app, "#shot-overlay")[0]
    w, h = overlay.size["width"], overlay.size["height"]
    (
        ActionChains(app)
        .move_to_element_with_offset(overlay, -w // 4, -h // 4)
        .click_and_hold()
        .move_by_offset(w // 4, h // 4)
        .move_by_offset(w // 4, h // 4)
        .release()
        .perform()
    )
    wait(app, lambda d: css(d, "#box-save")[0].is_enabled())
    css(app, "#box-text")[0].send_keys("red ball here")
    css(app, "#box-save")[0].click()
    wait(app, lambda d: "red ball here" in css(d, "#shot-notes")[0].text)

    status, got = server.json("GET", "/v1/annotations?" + urllib.parse.urlencode({"q": "red ball"}))
    [note] = got["annotations"]
    assert note["type"] == "comment" and note["asset"] == "film1" and note["author"] == "editor"
    assert note["box"] == pytest.approx([0.25, 0.25, 0.75, 0.75], abs=0.03)
    assert note["start_s"] == pytest.approx(1.0 + 0.4, abs=0.05)  # shot 1 starts at 1.0 s

    app.get(server.url + "/#search")
    css(app, "#text-q")[0].send_keys("RED BALL")
    css(app, "#text-run")[0].click()
    wait(app, lambda d: len(css(d, ".card.note")) == 1)
    assert "red ball here" in css(app, ".card.note")[0].text
