"""`resdsl render --format html`: the interactive page, as data and in a real headless Chromium.

The browser tests drive Debian's `chromium` through `chromedriver` with
Selenium; they skip, saying why, only where no browser can be found
(scripts/setup.sh installs both when run as root).
`pytest tests/test_interactive.py --update-goldens` also rewrites the
screenshot the README shows, docs/interactive-resnet152.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import resdsl
from resdsl.backends import interactive
from resdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "interactive-resnet152.png"
NESTED = ROOT / "tests" / "data" / "nested_blocks.res"  # an SE-like block called in each block, a `seq` stem


@pytest.fixture(scope="module")
def resnet152():
    return resdsl.compile(ROOT / "specs" / "resnet152.res")


def embedded_model(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


# -- the page as data ---------------------------------------------------------------


def test_page_is_self_contained_and_deterministic(resnet152):
    page = resnet152.to_html()
    assert page == resdsl.compile(ROOT / "specs" / "resnet152.res").to_html()
    assert page.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external script, style, font or image, no request made from the script.
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("http://www.w3.org")
    for fetching in ("<link", " src=", "@import", "url(http", "fetch(", "XMLHttpRequest", "WebSocket", "import("):
        assert fetching not in page


def test_model_holds_all_three_levels_nested(resnet152):
    model = embedded_model(resnet152.to_html())
    units = {u["id"]: u for u in model["units"]}
    by_level = [[u for u in model["units"] if u["level"] == level] for level in range(3)]
    assert [u["path"] for u in by_level[0]] == ["input", "stem", "layer1", "layer2", "layer3", "layer4", "head"]
    layer3 = next(u for u in by_level[0] if u["path"] == "layer3")
    blocks = [u for u in by_level[1] if u["parent"] == layer3["id"]]
    assert [u["title"] for u in blocks if u["kind"] == "body"] == [f"layer3.{i}" for i in range(36)]
    assert [u["kind"] for u in blocks if u["group"] == "block:layer3.0"] == ["body", "projection", "add"]
    # Each op sits in one block-level unit, each of those in one stage: the sums agree at every level.
    for level in by_level:
        assert sum(u["params"] for u in level) == resnet152.params
        assert sum(u["macs"] for u in level) == resnet152.macs
    conv2 = next(u for u in by_level[2] if u["path"] == "layer3.4.conv2")
    body = units[conv2["parent"]]
    assert body["title"] == "layer3.4" and units[body["parent"]] is layer3
    assert conv2["rows"] == ["3×3 conv, 256", "layer3.4.conv2"]
    assert (conv2["inputs"], conv2["output"], conv2["params"]) == (["256×14×14"], "256×14×14", 256 * 256 * 9)
    projection = next(u for u in by_level[1] if u["group"] == "block:layer3.0" and u["kind"] == "projection")
    assert projection["path"] == "layer3.0.downsample"
    assert projection["inputs"] == ["512×28×28"] and projection["output"] == "1024×14×14"
    # The same labels as the DOT diagram.
    dot_text = resnet152.to_dot(level="block")
    assert all(row in dot_text for u in by_level[1] for row in u["rows"])


def test_blocks_called_inside_blocks_nest_in_the_model():
    net = resdsl.compile(NESTED)
    model = embedded_model(net.to_html())
    units = {u["id"]: u for u in model["units"]}
    fc1 = next(u for u in model["units"] if u["path"] == "layer1.0.se.fc1")
    assert fc1["nest"] == [["layer1.0.se", "squeeze"]] and fc1["group"] == "block:layer1.0"
    body = units[fc1["parent"]]
    assert body["title"] == "layer1.0" and body["rows"][-1] == "se = squeeze(32, 8)"
    # The stem's sequence expands as one: its units share a group, and its ops sit in no called block.
    stem = [u for u in model["units"] if u["level"] == 2 and u["path"].startswith("conv1.")]
    assert len(stem) == 7 and {units[u["parent"]]["group"] for u in stem} == {"block:conv1"}
    assert all(u["nest"] == [] for u in stem)
    for level in range(3):
        assert sum(u["params"] for u in model["units"] if u["level"] == level) == net.params


def test_spec_text_is_escaped():
    ir = resdsl.compile(ROOT / "specs" / "resnet18.res").ir
    hostile = 'x</script><script>alert("name")</script><!--'
    ir.name = hostile
    page = interactive.emit(ir)
    assert "<script>alert" not in page and "<!--" not in page
    assert page.count("</script>") == 2  # the model's and the script's own
    assert embedded_model(page)["name"] == hostile
    assert "<title>x&lt;/script&gt;&lt;script&gt;alert(&quot;name&quot;)" in page
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page  # text goes in as text


def test_levels_open_the_page_where_asked(resnet152):
    assert [embedded_model(resnet152.to_html(level))["level"] for level in ("stage", "block", "op")] == [0, 1, 2]
    with pytest.raises(ValueError, match="level"):
        resnet152.to_html("layer")


def test_cli_writes_html(tmp_path, capsys, monkeypatch):
    spec = str(ROOT / "specs" / "resnet18.res")
    monkeypatch.chdir(tmp_path)
    assert main(["render", spec, "--format", "html"]) == 0
    page = (tmp_path / "resnet18.html").read_text(encoding="utf-8")
    assert page == resdsl.compile(spec).to_html()
    assert "interactive page, opens at stage level" in capsys.readouterr().err
    assert main(["render", spec, "-o", str(tmp_path / "r18.html"), "--level", "block"]) == 0
    assert embedded_model((tmp_path / "r18.html").read_text(encoding="utf-8"))["level"] == 1
    assert main(["render", spec, "-o", "-", "--format", "html"]) == 0
    assert capsys.readouterr().out == page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.svg", "--format", "html"], "'x.svg' is named .svg, but --format says html"),
        (["--format", "html", "--rankdir", "LR"], "the interactive page flows top to bottom"),
        (["-o", "x.jpg"], "name it .svg, .png, .pdf, .dot or .html"),
    ],
)
def test_cli_render_usage_errors(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["render", str(ROOT / "specs" / "resnet18.res"), *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_html_render_never_imports_torch_or_onnx(tmp_path):
    code = (
        "import sys; from resdsl.cli import main; "
        f"rc = main(['render', {str(ROOT / 'specs' / 'resnet50.res')!r}, '-o', {str(tmp_path / 'r50.html')!r}]); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.stdout.strip() == "0 []"


# -- the page in a browser ---------------------------------------------------------------


def _browser_paths() -> tuple[str, str] | None:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    paths = _browser_paths()
    if paths is None:
        pytest.skip("no headless Chromium with chromedriver here (scripts/setup.sh installs Debian's as root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("Selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    profile = tempfile.mkdtemp(prefix="resdsl-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(browser, compiled: resdsl.Compiled, folder: Path):
    """Load a network's page; afterwards, the browser must have logged no error."""
    target = folder / f"{compiled.name}.html"
    target.write_text(compiled.to_html(), encoding="utf-8")
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(target.as_uri())
    yield browser
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


@pytest.fixture
def page(browser, resnet152, tmp_path):
    """resnet152's page, loaded."""
    yield from _open(browser, resnet152, tmp_path)


@pytest.fixture
def nested_page(browser, tmp_path):
    """The page of a network whose blocks call a block, with a `seq` stem, loaded."""
    yield from _open(browser, resdsl.compile(NESTED), tmp_path)


def shown(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [node.get_attribute("data-path") for node in driver.find_elements(By.CSS_SELECTOR, ".node")]


def click_node(driver, path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'.node[data-path="{path}"]').click()


def test_page_loads_at_stage_level_and_expands_in_place(page, update_goldens, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    assert shown(page) == ["input", "stem", "layer1", "layer2", "layer3", "layer4", "head", ""]  # "" is the output
    click_node(page, "layer3")
    after = shown(page)
    assert [p for p in after if p.startswith("layer3")][:4] == [
        "layer3.0",
        "layer3.0.downsample",
        "layer3.0.act3",  # the add, with the ReLU after it
        "layer3.1",
    ]
    assert {f"layer3.{i}" for i in range(36)} <= set(after)
    assert "layer2" in after and "layer4" in after  # the other stages stay folded
    frames = [title.get_attribute("textContent") for title in page.find_elements(By.CSS_SELECTOR, ".frame text")]
    assert frames == ["layer3  bottleneck ×36"]

    ActionChains(page).move_to_element(page.find_element(By.ID, "hint")).perform()
    shot = tmp_path / "resnet152-layer3.png"
    page.save_screenshot(str(shot))
    if update_goldens:
        shutil.copyfile(shot, SCREENSHOT)
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1400, page.execute_script("return window.innerHeight"))
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20)}
    assert (255, 232, 204) in colours  # the orange of layer3.0's projection, now on screen


def test_hover_shows_path_shapes_parameters_and_macs(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    click_node(page, "layer2")
    node = page.find_element(By.CSS_SELECTOR, '.node[data-path="layer2.0.downsample"]')
    ActionChains(page).move_to_element(node).perform()
    tip = page.find_element(By.ID, "tooltip")
    assert tip.is_displayed()
    lines = tip.text.splitlines()
    assert lines[0].startswith("layer2.0.downsample")
    assert "in 256×56×56 → out 512×28×28" in lines
    assert "132,096 parameters · 102,760,448 MACs" in lines  # 1×1 conv 256→512 stride 2, and its BN


def test_block_expands_to_ops_and_frames_fold(page):
    from selenium.webdriver.common.by import By

    click_node(page, "layer3")
    click_node(page, "layer3.1")
    ops = [p for p in shown(page) if p.startswith("layer3.1")]
    assert ops[:3] == ["layer3.1.conv1", "layer3.1.bn1", "layer3.1.act1"]
    assert "layer3.1.conv3" in ops and "layer3.2" in shown(page)

    def frame(title: str):
        texts = page.find_elements(By.CSS_SELECTOR, ".frame text")
        return next(t for t in texts if t.get_attribute("textContent").split()[0] == title)

    frame("layer3.1").click()
    assert "layer3.1.conv1" not in shown(page) and "layer3.1" in shown(page)
    frame("layer3").click()
    assert shown(page) == ["input", "stem", "layer1", "layer2", "layer3", "layer4", "head", ""]


def test_search_finds_a_module_path(page):
    from selenium.webdriver.common.by import By

    query = page.find_element(By.ID, "query")
    query.send_keys("layer2.3.conv2")
    page.find_element(By.CSS_SELECTOR, "#search button").click()
    found = page.find_elements(By.CSS_SELECTOR, ".node.found")
    assert [node.get_attribute("data-path") for node in found] == ["layer2.3.conv2"]
    assert page.find_element(By.ID, "found").text == "layer2.3.conv2"
    # The match is on screen.
    box = page.execute_script("return arguments[0].getBoundingClientRect().toJSON()", found[0])
    view = page.find_element(By.ID, "view").rect
    assert view["x"] <= box["x"] and box["x"] + box["width"] <= view["x"] + view["width"]
    assert view["y"] <= box["y"] and box["y"] + box["height"] <= view["y"] + view["height"]
    query.clear()
    query.send_keys("layer4.1")  # a block: its node at block level, not an op that sits in it
    page.find_element(By.CSS_SELECTOR, "#search button").click()
    found = page.find_elements(By.CSS_SELECTOR, ".node.found")
    assert [(node.get_attribute("data-id"), node.get_attribute("data-path")) for node in found] == [
        (next(u["id"] for u in embedded_model(page.page_source)["units"] if u["title"] == "layer4.1"), "layer4.1")
    ]
    query.clear()
    query.send_keys("layer9")
    page.find_element(By.CSS_SELECTOR, "#search button").click()
    assert page.find_element(By.ID, "found").text == "no module path matches “layer9”"


def test_pan_and_zoom(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By

    def view() -> list[float]:
        return [float(v) for v in re.findall(r"-?[\d.]+", page.find_element(By.ID, "scene").get_attribute("transform"))]

    canvas = page.find_element(By.ID, "canvas")
    x0, y0, k0 = view()
    drag = ActionChains(page).move_to_element_with_offset(canvas, -400, -300).click_and_hold()
    drag.move_by_offset(120, 80).release().perform()
    x1, y1, k1 = view()
    assert (round(x1 - x0), round(y1 - y0), k1) == (120, 80, k0)
    ActionChains(page).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -300).perform()
    time.sleep(0.1)
    assert view()[2] > k1  # scrolling up zooms in


def test_blocks_called_inside_blocks_expand_inside_their_caller(nested_page):
    from selenium.webdriver.common.by import By

    page = nested_page
    assert shown(page) == ["input", "stem", "layer1", "layer2", "head", ""]
    click_node(page, "layer1")
    click_node(page, "layer1.0")
    ops = [p for p in shown(page) if p.startswith("layer1.0.")]
    assert ops[:7] == [f"layer1.0.{op}" for op in ("conv1", "bn1", "act1", "conv2", "bn2", "se.gap", "se.fc1")]

    def frames() -> dict[str, dict]:
        found = {}
        for frame in page.find_elements(By.CSS_SELECTOR, ".frame"):
            title = frame.find_element(By.CSS_SELECTOR, "text").get_attribute("textContent").split()[0]
            found[title] = frame.find_element(By.CSS_SELECTOR, "rect").rect
        return found

    def inside(inner: dict, outer: dict) -> bool:
        return (
            outer["x"] <= inner["x"]
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
            and outer["y"] <= inner["y"]
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
        )

    boxes = frames()
    assert set(boxes) == {"layer1", "layer1.0", "layer1.0.se"}
    assert inside(boxes["layer1.0.se"], boxes["layer1.0"]) and inside(boxes["layer1.0"], boxes["layer1"])
    fc1 = page.find_element(By.CSS_SELECTOR, '.node[data-path="layer1.0.se.fc1"] rect').rect
    conv1 = page.find_element(By.CSS_SELECTOR, '.node[data-path="layer1.0.conv1"] rect').rect
    assert inside(fc1, boxes["layer1.0.se"]) and not inside(conv1, boxes["layer1.0.se"])
    # The stem's `seq` opens as one frame of its seven ops.
    click_node(page, "stem")
    click_node(page, "conv1.0, conv1.1, conv1.2")
    assert [p for p in shown(page) if p.startswith("conv1.")] == [f"conv1.{i}" for i in range(7)]
    assert "conv1" in frames()
    # Folding the caller folds what it calls.
    page.find_element(By.ID, "fit").click()  # the whole network on screen, layer1.0's title with it
    titles = page.find_elements(By.CSS_SELECTOR, ".frame text")
    next(t for t in titles if t.get_attribute("textContent").split()[0] == "layer1.0").click()
    assert [p for p in shown(page) if p.startswith("layer1.0")] == ["layer1.0", "layer1.0.act2"]  # body, add
    assert set(frames()) == {"stem", "conv1", "layer1"}
