"""The self-contained HTML board (``bench.board.html``): deterministic, escaped, plots embedded; and, in headless
Chromium through selenium, sortable columns, pinned reference rows and the per-method detail view."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from bench.board.html import board_html, board_images
from bench.board.html_details import entry_details
from bench.grid.cells import plan
from bench.release.publish import write_tables
from bench.runtime.paths import REPO_ROOT
from bench.runtime.store import Store
from bench.specs.board import LeaderboardSpec

from .conftest import BROKEN, copy_mini_records, fixture_board

EVIL = "<script>alert('x')</script>&GA"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOT = REPO_ROOT / "test-artifacts" / "html_board.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SORT_COLUMN = "forget/prob"  # not the board's sort key (forget_quality), so the first click sorts ascending


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """The fixture board with GA labelled by an HTML injection, GA+KL (a non-default hyper-parameter), NPO and a
    method whose loss is NaN (its run failed: blank cells, a status and an error), written with ``write_tables``
    from the committed fixture records."""
    folder = tmp_path_factory.mktemp("html_board")
    methods = (f'[{{method: ga, label: "{EVIL}"}}, {{method: ga, label: GA+KL, params: {{retain_loss: kl}}}}, '
               f'{{method: npo, label: NPO}}, {BROKEN}]')
    board = LeaderboardSpec.load(fixture_board(folder, methods=methods))
    store = Store(copy_mini_records(folder / "results"))
    table, paths = write_tables(board, store)
    return board, store, table, paths


def test_html_is_deterministic_escaped_and_self_contained(built) -> None:
    board, store, table, paths = built
    text = paths["html"].read_text()
    assert paths["html"] == board.out_dir / "board.html"
    # same records -> same bytes: a second write, and a direct render, reproduce the file
    _, again = write_tables(board, store)
    assert again["html"].read_bytes() == paths["html"].read_bytes()
    images = board_images(board, ["tradeoff.png"], [])
    first = board_html(board, table, entry_details(board, store, table), images)
    assert first == board_html(board, table, entry_details(board, store, table), images)
    # the label from the YAML is escaped wherever it appears; the page's own script is the only <script>
    assert EVIL not in text and "alert('x')" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;GA" in text
    assert text.count("<script") == 1
    # the trade-off plot is embedded byte for byte; nothing is fetched from the network
    png = (board.out_dir / "tradeoff.png").read_bytes()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert base64.b64encode(png).decode() in uris
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    # headers carry the direction and the metric's description; the detail panels the hyper-parameters
    assert re.search(r'data-column="forget/es" data-direction="lower" title="forget/es: extraction strength', text)
    assert 'data-column="model_utility" data-direction="higher"' in text
    assert "<th scope=\"row\">retain_loss</th><td>kl</td>" in text
    assert "NonFiniteLoss" in text
    assert text.count('class="ref"') == 2 * (1 + len(board.tables))  # target and oracle, in every table


def _driver():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER}")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    try:
        return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except Exception as exc:  # a browser that is installed but cannot start here
        pytest.skip(f"headless Chromium did not start: {exc}")


def _column_state(driver, column: str) -> tuple[list[str], list[float | None]]:
    """The method rows of the main table in page order, and their ``column`` sort values (None: blank)."""
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.CSS_SELECTOR, 'table.board[data-table="main"]')
    heads = table.find_elements(By.CSS_SELECTOR, "thead th")
    index = [h.get_attribute("data-column") for h in heads].index(column)
    names, values = [], []
    for row in table.find_elements(By.CSS_SELECTOR, "tbody.runs tr"):
        cells = row.find_elements(By.XPATH, "./*")
        names.append(cells[0].text)
        value = cells[index].get_attribute("data-sort")
        values.append(float(value) if value else None)
    return names, values


def test_sort_and_detail_view_in_headless_chromium(built) -> None:
    board, _, table, paths = built
    driver = _driver()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        driver.get(paths["html"].resolve().as_uri())
        methods = table[~table["reference"].astype(bool)]
        expected = {str(m): float(v) for m, v in zip(methods["method"], methods[SORT_COLUMN]) if np.isfinite(v)}
        assert len(set(expected.values())) >= 2  # the order is a real test
        header = driver.find_element(
            By.CSS_SELECTOR, f'table.board[data-table="main"] th[data-column="{SORT_COLUMN}"]')
        assert "↓" in header.text or "↑" in header.text
        assert header.get_attribute("title").startswith(f"{SORT_COLUMN}: ")

        header.find_element(By.CSS_SELECTOR, "button.sort").click()
        names, values = _column_state(driver, SORT_COLUMN)
        assert header.get_attribute("aria-sort") == "ascending"
        assert names == sorted(expected, key=expected.get) + ["Broken"]  # numeric order, the failed run last
        assert values[:-1] == sorted(expected.values()) and values[-1] is None

        header.find_element(By.CSS_SELECTOR, "button.sort").click()
        names, values = _column_state(driver, SORT_COLUMN)
        assert header.get_attribute("aria-sort") == "descending"
        assert names == sorted(expected, key=expected.get, reverse=True) + ["Broken"]  # missing still last
        # the reference rows stay on top of the table whatever the order
        rows = driver.find_elements(By.CSS_SELECTOR, 'table.board[data-table="main"] tbody tr')
        assert [r.get_attribute("class") for r in rows[:2]] == ["ref", "ref"]
        assert "retain oracle" in rows[1].text

        # a row click opens the method's detail view with its hyper-parameters, run id and budget used
        kl = next(r for r in rows if r.get_attribute("class") == "run" and r.text.startswith("GA+KL"))
        kl.click()
        dialog = driver.find_element(By.ID, "detail-view")
        WebDriverWait(driver, 5).until(lambda d: dialog.get_attribute("open") is not None)
        text = dialog.text
        kl_cell = next(c for c in plan(board) if c.method.display == "GA+KL")
        assert "registered method ga" in text
        assert "retain_loss kl" in text and "Hyper-parameters" in text
        assert kl_cell.spec.run_id in text and "used: optimizer steps 4" in text
        driver.save_screenshot(str(_screenshot_path()))
        dialog.find_element(By.CSS_SELECTOR, "button.close").click()
        WebDriverWait(driver, 5).until(lambda d: dialog.get_attribute("open") is None)

        # the failed entry's view shows its error; the label stays text, not markup
        broken = next(r for r in driver.find_elements(By.CSS_SELECTOR, "tbody.runs tr") if r.text.startswith("Broken"))
        broken.click()
        WebDriverWait(driver, 5).until(lambda d: dialog.get_attribute("open") is not None)
        assert "NonFiniteLoss" in dialog.text
        assert any(EVIL in r.text for r in driver.find_elements(By.CSS_SELECTOR, "tbody.runs tr"))
        assert driver.execute_script("return document.querySelectorAll('script').length") == 1
    finally:
        driver.quit()
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 0
    assert SCREENSHOT.read_bytes().startswith(PNG_MAGIC)


def _screenshot_path() -> Path:
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    return SCREENSHOT


def test_browser_test_skips_without_a_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Chromium the browser test is skipped with its reason, not failed."""
    monkeypatch.setattr(f"{__name__}.CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.skip.Exception, match="needs /nonexistent/chromium"):
        _driver()
