"""``neuroprune dashboard`` on a PostgreSQL study, looked at in headless Chromium: what a person
sees (the study, its trials, the named objective, each trial's note and mask artifact)."""

import shutil
import tempfile
from pathlib import Path

import pytest

from neuroprune.config import load_config
from neuroprune.tuning.tune import Tuner

from helpers import REPO
from servers import dashboard, get_json, postgres_database

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
INSTALL = "apt-get install chromium chromium-driver"
STUDY = "browser_study"
REVIEW_COPY = Path(tempfile.gettempdir()) / "dashboard_screenshot.png"  # for a human look


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses (hex, as in /proc/net/tcp*) that listen on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture
def browser(tmp_path):
    """Headless Debian Chromium driven through its chromedriver (no browser download)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(f"Chromium and its driver are not installed: {INSTALL}")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="pip install 'neuroprune[browser]'")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1700",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _page_text(driver, url: str, *expected: str) -> str:
    """Open ``url`` and wait until the rendered page shows every ``expected`` text."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    body = {}

    def shown(d):
        body["text"] = d.find_element("tag name", "body").text
        return all(e in body["text"] for e in expected)

    try:
        WebDriverWait(driver, 60, poll_frequency=0.3).until(shown)
    except Exception:
        missing = [e for e in expected if e not in body.get("text", "")]
        raise AssertionError(f"{url} does not show {missing}; it shows: "
                             f"{body.get('text', '')[:500]!r}") from None
    return body["text"]


def test_dashboard_shows_the_study_its_trials_notes_and_masks(browser, tmp_path):
    with postgres_database() as url:
        out = tmp_path / "tune"
        cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                          ["method.population=4", "method.generations=2", "training.epochs=2",
                           "model.widths=[16]", "tune.pruner=none"])
        Tuner(cfg, out, storage=url, study_name=STUDY, n_trials=3).run(progress=False)
        with dashboard(url, "--artifacts", str(out / "artifacts")) as (base, proc):
            port = int(base.rsplit(":", 1)[1])
            assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
            (summary,) = get_json(f"{base}/api/studies")["study_summaries"]
            study_page = f"{base}/dashboard/studies/{summary['study_id']}"

            text = _page_text(browser, f"{base}/dashboard", STUDY)
            assert "MAXIMIZE" in text
            text = _page_text(browser, study_page, STUDY, "History", "Best Trial")
            assert "val_accuracy" in text  # the objective by its name, not "Objective 0"
            browser.save_screenshot(str(tmp_path / "dashboard_study.png"))

            text = _page_text(browser, f"{study_page}/trials", "3 Trials", "Trial 0",
                              "Trial 1", "Trial 2", "Note", "Run directory",
                              "best_mask.safetensors")
            assert f"--study {STUDY} --trial 0" in text  # the trial's note, rendered
            assert text.count("Complete") >= 3
            shot = tmp_path / "dashboard_trials.png"
            browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    shutil.copyfile(tmp_path / "dashboard_study.png", REVIEW_COPY)
    shutil.copyfile(shot, REVIEW_COPY.with_name("dashboard_trials_screenshot.png"))
