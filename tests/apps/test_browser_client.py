"""The browser client (``monai_ceph/apps/monailabel/client``) in a real headless Chromium against the real server.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium (the ``dev`` extra);
skipped with the reason otherwise. The screenshot of what the annotator sees is written to
``artefacts/browser_client.png`` (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from ml_server import NO_MONAILABEL, REPO, start_server

ARTEFACTS = REPO / "artefacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def client_server(tmp_path_factory, isbi_dir):
    """A server of its own: this module stores a label, which the other app modules do not expect."""
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    yield from start_server(tmp_path_factory.mktemp("browser"), isbi_dir)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("no chromium / chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(180)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 180):
    deadline = time.time() + timeout
    while not (value := driver.execute_script(script)):
        assert time.time() < deadline, f"timed out waiting for: {script}; message: {message(driver)}"
        time.sleep(0.5)
    return value


def message(driver) -> str:
    return driver.execute_script("return document.getElementById('message').textContent")


def client_points(driver) -> dict:
    points = driver.execute_script("return window.cephClient.points.map(p => [p.abbreviation, p.x, p.y])")
    return {abbr: (x, y) for abbr, x, y in points}


def test_annotate_drag_and_save(browser, client_server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(client_server.url + "/client/?image=001")
    wait_for(browser, "return window.cephClient && window.cephClient.drawn.length === 19")
    expected = client_server.infer("001")
    names = [lm["abbreviation"] for lm in expected["landmarks"]]
    assert len(names) == 19

    # the 19 points are drawn where the infer result says
    drawn = {d["abbreviation"]: (d["sx"], d["sy"]) for d in browser.execute_script("return window.cephClient.drawn")}
    assert sorted(drawn) == sorted(names)
    points = client_points(browser)
    for lm in expected["landmarks"]:
        np.testing.assert_allclose(points[lm["abbreviation"]], (lm["x"], lm["y"]), atol=1e-6)
        screen = browser.execute_script("return window.cephClient.toScreen(arguments[0], arguments[1])", lm["x"], lm["y"])
        np.testing.assert_allclose(drawn[lm["abbreviation"]], screen, atol=1e-6)
    # and they are coloured on the grey radiograph: the canvas pixel under each point is saturated
    pixels = browser.execute_script(
        "const c = document.getElementById('canvas').getContext('2d');"
        "return window.cephClient.drawn.map(d => Array.from(c.getImageData(Math.round(d.sx), Math.round(d.sy), 1, 1).data));")
    assert all(max(p[:3]) - min(p[:3]) > 80 for p in pixels), pixels
    listed = browser.execute_script("return Array.from(document.querySelectorAll('#landmarks li')).map(li => li.dataset.abbreviation)")
    confidence = {lm["abbreviation"]: lm.get("confidence") for lm in expected["landmarks"]}
    if all(c is not None for c in confidence.values()) and "sigma_mm" not in expected["landmarks"][0]:
        assert listed == sorted(names, key=lambda a: confidence[a]), "least confident first"

    # drag S with real mouse events
    canvas = browser.find_element(By.ID, "canvas")
    width, height = browser.execute_script("const c = document.getElementById('canvas'); return [c.width, c.height]")
    scale = browser.execute_script("return window.cephClient.view.scale")
    sx, sy = drawn["S"]
    dx, dy = 40, 25
    ActionChains(browser).move_to_element_with_offset(canvas, round(sx - width / 2), round(sy - height / 2)) \
        .click_and_hold().move_by_offset(dx, dy).release().perform()
    wait_for(browser, "return window.cephClient.refits >= 1")  # the re-fit request with S fixed came back
    moved = client_points(browser)["S"]
    start = np.array((expected["landmarks"][names.index("S")]["x"], expected["landmarks"][names.index("S")]["y"]))
    np.testing.assert_allclose(np.array(moved) - start, np.array((dx, dy)) / scale, atol=1.5 / scale)

    # a save the server refuses shows its message and keeps the edits
    browser.execute_script("window.cephClient.points.find(p => p.abbreviation === 'N').x = 1e6;")
    browser.find_element(By.ID, "save").click()
    wait_for(browser, "return document.getElementById('message').className === 'error'")
    assert "outside the image" in message(browser), message(browser)
    assert client_points(browser)["S"] == moved
    assert stored_label(client_server) is None
    browser.execute_script("const p = window.cephClient.points.find(p => p.abbreviation === 'N'); p.x = arguments[0];",
                           points["N"][0])

    browser.find_element(By.ID, "save").click()
    wait_for(browser, "return document.getElementById('message').textContent.startsWith('saved')")
    label = stored_label(client_server)
    stored = {lm["abbreviation"]: (lm["x"], lm["y"]) for lm in label["landmarks"]}
    np.testing.assert_allclose(stored["S"], moved, atol=1e-6)
    for abbr in names:
        if abbr != "S":
            np.testing.assert_allclose(stored[abbr], client_points(browser)[abbr], atol=1e-6)
    wait_for(browser, "return document.querySelector('#images li.labelled') !== null")

    ARTEFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTEFACTS / "browser_client.png"))


def stored_label(server) -> dict | None:
    response = server.get("/datastore/label", params={"label": "001", "tag": "final"})
    return json.loads(response.content) if response.status_code == 200 else None
