"""The cxsync pages in a real headless Chromium against the real api-server: Airflow's login, every page's
content against the warehouse, an override set through the form, and the HelpDesk connect flow end to end
against the sandbox's authorize page. Each page is saved as a screenshot (tests/ui/artifacts/, and the
README's copies in docs/screenshots/)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import requests
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from tests.ui.conftest import (
    DIFFERING_DAY_WARNING,
    FAILURE_ACTION,
    FAILURE_MESSAGE,
    LIST_RUN_ID,
    copy_to_docs,
    screenshot,
)

pytestmark = pytest.mark.browser

# The connection as the metadata DB holds it, tried by the hook (outside a task the hook sees only environment
# variables: hand it over as one).
READ_CONNECTION = """
import json, os, sys
from airflow.models.connection import Connection
from cxsync.hooks.helpdesk import HelpDeskHook
conn = Connection.get_connection_from_secrets(sys.argv[1])
fields = {"conn_type": conn.conn_type, "host": conn.host, "schema": conn.schema, "port": conn.port,
          "login": conn.login, "password": conn.password, "extra": conn.extra_dejson}
os.environ["AIRFLOW_CONN_HD_STORED"] = json.dumps(fields)
ok, message = HelpDeskHook("hd_stored").test_connection()
print(json.dumps({"has_refresh_token": bool(conn.extra_dejson.get("refresh_token")), "works": ok}))
"""


@pytest.fixture(scope="module")
def signed_in(ui_server, browser):
    """The browser, signed in as admin through Airflow's own login page."""
    # The browser is shared by the session: another module may have signed it in already.
    browser.get(ui_server.url + "/auth/login")
    browser.delete_all_cookies()
    browser.get(ui_server.url + "/cxsync/")
    wait = WebDriverWait(browser, 60)
    assert "/auth/login" in browser.current_url  # an anonymous page view goes to Airflow's login
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(ui_server.passwords["admin"])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.current_url.rstrip("/").endswith("/cxsync"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))
    return browser


def _scalar(ui_server, sql: str, **params) -> int:
    engine = ui_server.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar_one()
    finally:
        engine.dispose()


def _card(driver, integration_id: str):
    return driver.find_element(By.ID, f"integration-{integration_id}")


def test_status_page_matches_the_warehouse_and_airflow(ui_server, signed_in, artifacts):
    driver = signed_in
    driver.get(ui_server.url + "/cxsync/")
    card = _card(driver, "hd_main")
    expected = {
        "agents": _scalar(ui_server, "SELECT count(*) FROM cx_agents WHERE integration_id = 'hd_main'"),
        "interactions_open": _scalar(
            ui_server, "SELECT count(*) FROM cx_interactions WHERE integration_id = 'hd_main' AND status = 'open'"
        ),
        "interactions_closed": _scalar(
            ui_server, "SELECT count(*) FROM cx_interactions WHERE integration_id = 'hd_main' AND status = 'closed'"
        ),
        "messages": _scalar(ui_server, "SELECT count(*) FROM cx_messages WHERE integration_id = 'hd_main'"),
        "unmatched_agents": _scalar(
            ui_server, "SELECT count(*) FROM cx_agent_matches WHERE method IN ('unmatched', 'ambiguous')"
        ),
    }
    assert expected["agents"] > 2 and expected["interactions_closed"] > 0
    shown = {k: card.find_element(By.CSS_SELECTOR, f"[data-field={k}]").text.replace(",", "") for k in expected}
    assert shown == {k: str(v) for k, v in expected.items()}
    # the provider requests the loading tasks recorded (the fixture loaded hd_main through the real tasks)
    recorded = _scalar(ui_server, "SELECT sum(requests) FROM cx_request_stats WHERE integration_id = 'hd_main'")
    assert recorded > 0
    assert card.find_element(By.CSS_SELECTOR, "[data-field=requests]").text.replace(",", "").startswith(str(recorded))

    text = card.text
    assert "The last incremental run failed at" in text
    # the failed task's plain line (its first line and the fix), not a pointer to the log
    assert f"{FAILURE_MESSAGE}. {FAILURE_ACTION}" in text
    progress = card.find_element(By.CSS_SELECTOR, "[data-field=progress]").text
    assert progress.startswith("3 of 4 days done, about ") and progress.endswith(" left")
    refresh = driver.find_element(By.CSS_SELECTOR, "meta[http-equiv=refresh]").get_attribute("content")
    assert refresh == "900"  # a run is under way: the page reloads itself (the fixture's slow pace)
    assert f"{expected['unmatched_agents']} agent(s) without a staff match" in text
    roster_ok = card.find_element(By.CSS_SELECTOR, "a[href$='/dags/cxsync_hd_main_roster_sync/runs/manual__roster_ok']")
    assert "UTC" in roster_ok.text
    assert "Connection 'helpdesk_nowhere' is missing" in _card(driver, "hd_nowhere").text
    assert "No incremental watermark yet" in _card(driver, "hd_oauth").text
    assert len(card.find_elements(By.CSS_SELECTOR, "svg.chart rect")) == 28
    assert card.find_element(By.CSS_SELECTOR, "svg.chart text.tick").text == "0"  # a y scale
    # per-agent analytics: the busiest first, closed and open bars, on a scale
    assert [c.text for c in card.find_elements(By.CSS_SELECTOR, "table.analytics [data-field=conversations]")] == [
        "6", "4"
    ]  # fmt: skip
    assert len(card.find_elements(By.CSS_SELECTOR, "svg.agent-chart rect.closed")) == 2
    # Completeness: the days that differ from the provider first, with their warning; none without records.
    checked = card.find_elements(By.CSS_SELECTOR, "table.reconciliation tbody tr")
    # a day the reconciliation repaired is complete again: only the day it could not repair is marked
    assert [row.get_attribute("class") for row in checked[:3]] == ["bad", "", ""]
    assert DIFFERING_DAY_WARNING in checked[0].text and DIFFERING_DAY_WARNING not in checked[1].text
    assert "differs from the provider on 1 checked day(s)" in text  # the repaired day is not a warning
    assert not _card(driver, "hd_oauth").find_elements(By.CSS_SELECTOR, "table.reconciliation")
    copy_to_docs([screenshot(driver, "status", artifacts)])

    api = requests.get(
        ui_server.url + "/cxsync/api/status",
        headers={"Authorization": f"Bearer {ui_server.token('viewer')}"},
        timeout=60,
    ).json()
    hd_main = next(i for i in api["integrations"] if i["id"] == "hd_main")
    assert {k: hd_main["rows"][k] for k in expected} == expected
    assert hd_main["reconciliation"][0]["warning"] == DIFFERING_DAY_WARNING and hd_main["reconciliation"][0]["differs"]
    recent = _scalar(
        ui_server,
        "SELECT count(*) FROM cx_interactions WHERE integration_id = 'hd_main' AND started_at >= :since",
        since=hd_main["per_day"][0]["day"],
    )
    assert sum(d["interactions"] for d in hd_main["per_day"]) == recent > 0
    assert hd_main["watermarks"][0]["stream"] == "interactions" and hd_main["watermarks"][0]["age_seconds"] >= 0
    assert all(p["exists"] for p in api["pools"])  # created by the plugin when the api-server started


def test_manage_users_lists_every_agent_and_sets_an_override(ui_server, signed_in, artifacts):
    driver = signed_in
    driver.get(ui_server.url + "/cxsync/agents")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.agents tbody tr")
    assert len(rows) == _scalar(ui_server, "SELECT count(*) FROM cx_agents")
    methods = [row.find_element(By.CSS_SELECTOR, ".badge.method").text for row in rows]
    # The ones to fix first: unmatched, then ambiguous (with their candidates), then the matched ones.
    assert methods == sorted(methods, key=["unmatched", "ambiguous", "email"].index) and methods[-1] == "email"
    assert "candidates: Sam Twin (s-102), Sam Twin (s-103)" in rows[methods.index("ambiguous")].text  # names
    assert not driver.find_elements(By.ID, "not-matched-yet")  # matching ran
    target = rows[0].get_attribute("data-agent")

    rows[0].find_element(By.NAME, "staff_id").send_keys("s-100")
    rows[0].find_element(By.CSS_SELECTOR, "button[value=set]").click()
    flash = WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
    assert f"{target} is matched to staff s-100 (override set by admin)" in flash.text
    assert "Applied now: the agent's match is manual" in flash.text  # no wait for the next matching run
    assert driver.current_url.endswith("#" + "agent-" + target.replace("/", "-"))  # back at the edited row
    engine = ui_server.engine()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM cx_agent_match_overrides")).mappings().all()
    engine.dispose()
    assert [(r["integration_id"] + "/" + r["agent_id"], r["staff_id"], r["set_by"]) for r in stored] == [
        (target, "s-100", "admin")
    ]
    row = driver.find_element(By.CSS_SELECTOR, f"tr[data-agent='{target}']")
    assert "→ Ada Evaluator s-100" in row.text and "by admin" in row.text
    assert row.find_element(By.CSS_SELECTOR, ".badge.method").text == "manual"
    copy_to_docs([screenshot(driver, "agents", artifacts)])

    row.find_element(By.CSS_SELECTOR, "button[value=clear]").click()
    WebDriverWait(driver, 30).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash.ok"), "cleared"))
    assert _scalar(ui_server, "SELECT count(*) FROM cx_agent_match_overrides") == 0

    driver.get(ui_server.url + "/cxsync/agents?method=unmatched")
    badges = {b.text for b in driver.find_elements(By.CSS_SELECTOR, "table.agents .badge.method")}
    assert badges == {"unmatched"}


def test_qa_lists_page_and_csv(ui_server, signed_in, artifacts):
    driver = signed_in
    driver.get(ui_server.url + "/cxsync/lists")
    row = driver.find_element(By.CSS_SELECTOR, f"tr[data-run='{LIST_RUN_ID}']")
    items = _scalar(ui_server, "SELECT count(*) FROM cx_qa_list_items WHERE list_run_id = :r", r=LIST_RUN_ID)
    assert row.find_element(By.CSS_SELECTOR, "[data-field=items]").text == str(items)
    assert row.find_element(By.CSS_SELECTOR, "[data-field=population]").text == str(items + 7)
    assert "Ada Evaluator (s-100): 2" in row.text and "Sam Twin (s-102): 2" in row.text  # evaluators by name
    assert "s-101: 2 short" in row.text
    copy_to_docs([screenshot(driver, "lists", artifacts)])

    href = row.find_element(By.LINK_TEXT, "CSV").get_attribute("href")
    answer = requests.get(href, cookies={"_token": driver.get_cookie("_token")["value"]}, timeout=30)
    assert answer.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(answer.text)))
    engine = ui_server.engine()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT interaction_id, evaluator_id FROM cx_qa_list_items ORDER BY rank")).all()
    engine.dispose()
    assert [(r["interaction_id"], r["evaluator_id"]) for r in table] == [tuple(r) for r in stored]
    assert {r["list_id"] for r in table} == {"weekly_random"}


def _new_tab(driver, before: set[str]) -> str:
    """The window the sign-in opened (a top-level tab), switched to."""
    WebDriverWait(driver, 30).until(lambda d: len(set(d.window_handles) - before) == 1)
    handle = (set(driver.window_handles) - before).pop()
    driver.switch_to.window(handle)
    return handle


def _start_connect(driver, ui_server, conn_id: str) -> str:
    """Open the connect page, press Continue: the sign-in opens in a new tab (switched to); the first tab's
    handle is returned."""
    first = driver.current_window_handle
    driver.get(f"{ui_server.url}/cxsync/connect/helpdesk?conn_id={conn_id}")
    before = set(driver.window_handles)
    driver.find_element(By.ID, "connect-continue").click()
    _new_tab(driver, before)
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(ui_server.sandbox_url))
    return first


def _close_tab(driver, back_to: str) -> None:
    if driver.current_window_handle != back_to:
        driver.close()
    driver.switch_to.window(back_to)


def test_connect_helpdesk_end_to_end(ui_server, signed_in, artifacts):
    driver = signed_in
    driver.get(ui_server.url + "/cxsync/")
    _card(driver, "hd_oauth").find_element(By.PARTIAL_LINK_TEXT, "Connect HelpDesk").click()
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "connect-continue")))
    assert f"{ui_server.url}/cxsync/connect/helpdesk/callback" in driver.find_element(By.ID, "connect-callback").text
    shots = [screenshot(driver, "connect", artifacts)]
    first, before = driver.current_window_handle, set(driver.window_handles)
    driver.find_element(By.ID, "connect-continue").click()
    _new_tab(driver, before)  # the provider's sign-in is a top-level tab of its own
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(ui_server.sandbox_url))
    assert "code_challenge_method=s256" in driver.current_url and "state=" in driver.current_url
    shots.append(screenshot(driver, "helpdesk-authorize", artifacts))
    driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()

    flash = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
    assert driver.current_url.rstrip("/").endswith("/cxsync")
    assert "HelpDesk connected" in flash.text and "stored in connection 'sandbox_helpdesk_oauth'" in flash.text
    shots.append(screenshot(driver, "connected", artifacts))
    copy_to_docs(shots)
    _close_tab(driver, first)
    # the connect page the user left comes back to the status page by itself
    WebDriverWait(driver, 30).until(lambda d: d.current_url.rstrip("/").endswith("/cxsync"))
    stored = json.loads(ui_server.python(READ_CONNECTION, "sandbox_helpdesk_oauth").strip().splitlines()[-1])
    assert stored == {"has_refresh_token": True, "works": True}
    assert "Reconnect HelpDesk" in _card(driver, "hd_oauth").text


def test_connect_from_inside_airflows_frame_signs_in_in_a_top_level_tab(ui_server, signed_in):
    """Browse > cxsync shows the pages in Airflow's sandboxed iframe (no pop-ups, no top navigation), and real
    sign-in pages refuse to be framed: Continue opens the provider in a top-level tab, the frame says where a
    refusal would show and offers Cancel, and both end on the status page."""
    driver = signed_in
    first = driver.current_window_handle
    driver.get(ui_server.url + "/plugin/cxsync")
    frame = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    driver.switch_to.frame(frame)
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))
    _card(driver, "hd_oauth").find_element(By.PARTIAL_LINK_TEXT, "HelpDesk").click()
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "connect-continue")))
    before = set(driver.window_handles)
    driver.find_element(By.ID, "connect-continue").click()
    waiting = WebDriverWait(driver, 10).until(ec.visibility_of_element_located((By.ID, "connect-waiting")))
    assert "/ooops shows the reason" in waiting.text and driver.find_element(By.ID, "connect-cancel").is_displayed()
    _new_tab(driver, before)
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(ui_server.sandbox_url))
    driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    flash = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
    assert "HelpDesk connected" in flash.text
    _close_tab(driver, first)
    driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe"))
    try:
        WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))
    finally:
        driver.switch_to.default_content()
    assert "/plugin/cxsync" in driver.current_url  # still Airflow's page with cxsync in its frame


def test_connect_helpdesk_errors_in_plain_words(ui_server, signed_in, artifacts):
    driver = signed_in
    first = _start_connect(driver, ui_server, "sandbox_helpdesk_oauth")
    driver.find_element(By.CSS_SELECTOR, "button[value=deny]").click()
    problem = WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "connect-problem")))
    assert "HelpDesk did not authorize the app: access_denied (the user denied access)" in problem.text
    # the redirect URI to register, spelled out, not "(this page)/callback"
    assert "(this page)" not in driver.page_source and "/cxsync/connect/helpdesk/callback" in driver.page_source
    screenshot(driver, "connect-denied", artifacts)
    _close_tab(driver, first)

    first = _start_connect(driver, ui_server, "sandbox_helpdesk_oauth")
    driver.get(ui_server.url + "/cxsync/connect/helpdesk/callback?code=dal:forged&state=not-this-one")
    assert "`state` does not match" in driver.find_element(By.ID, "connect-problem").text
    _close_tab(driver, first)

    first = _start_connect(driver, ui_server, "helpdesk_badsecret")
    driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    problem = WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "connect-problem")))
    assert "client_secret (password) of the connection is wrong" in problem.text
    assert "wrong-secret" not in driver.page_source
    screenshot(driver, "connect-bad-secret", artifacts)
    _close_tab(driver, first)


def test_the_navigation_entry_opens_the_pages_inside_airflow(ui_server, signed_in, artifacts):
    """Airflow's own UI shows the external view `cxsync` at /plugin/cxsync, with our page in a frame."""
    driver = signed_in
    driver.get(ui_server.url + "/plugin/cxsync")
    frame = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    assert frame.get_attribute("src").rstrip("/").endswith("/cxsync")
    driver.switch_to.frame(frame)
    try:
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.integration")))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Integrations"
    finally:
        driver.switch_to.default_content()
    copy_to_docs([screenshot(driver, "airflow-nav", artifacts)])
