"""The cxsync pages where Airflow's menu opens them: its cxsync entry, inside Airflow's sandboxed plugin frame
(no top navigation, no pop-ups allowed). Every link is clicked from inside that frame, and from /cxsync/ opened
directly, and must end on the page it names."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser

ROSTER_RUN = "/dags/cxsync_hd_main_roster_sync/runs/manual__roster_ok"


@pytest.fixture(scope="module")
def driver(ui_server, browser):
    """The browser, signed in as admin through Airflow's own login page."""
    browser.get(ui_server.url + "/cxsync/")
    wait = WebDriverWait(browser, 60)
    if "/auth/login" in browser.current_url:
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(ui_server.passwords["admin"])
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))
    return browser


def _into_the_frame(driver, ui_server) -> None:
    """Airflow's page for the nav entry, then into its frame, once the status page shows there."""
    driver.switch_to.default_content()
    driver.get(ui_server.url + "/plugin/cxsync")
    frame = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title=cxsync]")))
    assert "allow-top-navigation" not in (frame.get_attribute("sandbox") or "")  # what the links must live with
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))


def _airflow_shows(driver, ui_server, path: str) -> None:
    """The top window (not the frame) is on Airflow's page `path`, with no cxsync frame left in it."""
    driver.switch_to.default_content()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.split("?")[0].rstrip("/") == (ui_server.url + path))
    # Airflow's router, not only the address bar, moved on: the plugin frame is gone
    WebDriverWait(driver, 30).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "iframe[title=cxsync]"))
    errors = [e for e in driver.get_log("browser") if "Unsafe attempt to initiate navigation" in e["message"]]
    assert not errors, errors


def test_the_top_level_navigation_entry_opens_the_pages_in_the_frame(ui_server, driver):
    driver.switch_to.default_content()
    driver.get(ui_server.url + "/dags")
    entry = WebDriverWait(driver, 60).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "a[aria-label=cxsync][href$='/plugin/cxsync']"))
    )
    entry.click()
    frame = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title=cxsync]")))
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))
    driver.switch_to.default_content()


def test_a_run_link_inside_the_frame_opens_airflows_run_page(ui_server, driver):
    _into_the_frame(driver, ui_server)
    driver.find_element(By.CSS_SELECTOR, f"#integration-hd_main a[href$='{ROSTER_RUN}']").click()
    _airflow_shows(driver, ui_server, ROSTER_RUN)
    # Airflow's own page, rendered by Airflow's UI in the top window: the run id shows
    WebDriverWait(driver, 60).until(lambda d: "manual__roster_ok" in d.find_element(By.TAG_NAME, "body").text)


def test_the_dag_and_failure_links_inside_the_frame(ui_server, driver):
    _into_the_frame(driver, ui_server)
    driver.find_element(By.CSS_SELECTOR, "#integration-hd_main a.bad[href*='scheduled__incr_failed']").click()
    _airflow_shows(driver, ui_server, "/dags/cxsync_hd_main_incremental/runs/scheduled__incr_failed")

    _into_the_frame(driver, ui_server)
    driver.find_element(By.LINK_TEXT, "cxsync_hd_main_roster_sync").click()
    _airflow_shows(driver, ui_server, "/dags/cxsync_hd_main_roster_sync")


def test_airflow_home_inside_the_frame(ui_server, driver):
    _into_the_frame(driver, ui_server)
    driver.find_element(By.LINK_TEXT, "Airflow home").click()
    _airflow_shows(driver, ui_server, "")


def test_the_cxsync_tabs_stay_inside_the_frame(ui_server, driver):
    _into_the_frame(driver, ui_server)
    for tab, heading in (("Manage Users", "Manage Users"), ("QA lists", "QA lists"), ("Integrations", "Integrations")):
        driver.find_element(By.LINK_TEXT, tab).click()
        WebDriverWait(driver, 30).until(lambda d, h=heading: d.find_element(By.TAG_NAME, "h1").text.startswith(h))
    driver.switch_to.default_content()
    assert driver.current_url.startswith(ui_server.url + "/plugin/cxsync")  # Airflow keeps its own frame and menu


def test_the_links_on_the_page_opened_directly(ui_server, driver):
    driver.switch_to.default_content()
    driver.get(ui_server.url + "/cxsync/")
    driver.find_element(By.CSS_SELECTOR, f"#integration-hd_main a[href$='{ROSTER_RUN}']").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.rstrip("/") == ui_server.url + ROSTER_RUN)
    driver.get(ui_server.url + "/cxsync/")
    driver.find_element(By.LINK_TEXT, "Airflow home").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.rstrip("/") == ui_server.url)


def test_qa_lists_items_and_transcripts_inside_the_frame(ui_server, driver):
    from tests.ui.conftest import LIST_RUN_ID

    _into_the_frame(driver, ui_server)
    driver.find_element(By.LINK_TEXT, "QA lists").click()
    defined = WebDriverWait(driver, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-list='support_earliest']"))
    )
    assert "never run" in defined.text  # a defined list that never ran is shown
    driver.find_element(By.CSS_SELECTOR, f"tr[data-run='{LIST_RUN_ID}']").find_element(By.LINK_TEXT, "Items").click()
    first = WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.items tbody tr")))
    assert "UTC" in first.find_element(By.CSS_SELECTOR, "[data-field=started_at]").text
    assert first.find_element(By.CSS_SELECTOR, "[data-field=evaluator]").text.split(" ")[0] in {"Ada", "Sam"}
    first.find_element(By.CSS_SELECTOR, "a[href*='/interactions/']").click()
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "ol.transcript li")))
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Interaction ")

    driver.find_element(By.LINK_TEXT, "Back to the QA lists").click()
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-list]")))
    driver.find_element(By.CSS_SELECTOR, "tr[data-list='weekly_random']").find_element(By.LINK_TEXT, "Run now…").click()
    _airflow_shows(driver, ui_server, "/dags/cxsync_qa_list_weekly_random")
