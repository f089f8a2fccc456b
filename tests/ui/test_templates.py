"""What the pages' HTML must hold to work inside Airflow's plugin frame (sandboxed: no top navigation, no
pop-ups), checked on the templates themselves; tests/ui/test_in_frame.py clicks the links in a real browser."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.ui import conftest

TEMPLATES = Path(conftest.ROOT / "plugins" / "cxsync" / "ui" / "templates")


def test_no_link_asks_for_a_navigation_the_frame_forbids():
    """Airflow's frame has no allow-top-navigation or allow-popups: a link targeting another window is dead there.
    (The HelpDesk connect form's new tab is submitted from Airflow's own window: tests/ui/test_connect_flow.py and
    the in-frame browser test cover it.)"""
    for path in TEMPLATES.glob("*.html"):
        for link in re.findall(r"<a [^>]*>", path.read_text()):
            assert not re.search(r'target="_(top|parent|blank)"', link), (path.name, link)


def test_every_link_to_an_airflow_page_is_handed_to_airflows_window():
    """A link to Airflow's own UI ({{ airflow }}/..., a DAG or run url from the status data) carries
    data-airflow-link, which static/cxsync.js hands to Airflow's router instead of loading it in the frame."""
    for path in TEMPLATES.glob("*.html"):
        for link in re.findall(r"<a [^>]*>", path.read_text()):
            to_airflow = "{{ airflow }}" in link or re.search(r'href="\{\{ d\.(url|last_\w+\.url) \}\}"', link)
            if to_airflow:
                assert "data-airflow-link" in link, (path.name, link)
    assert 'src="{{ base }}/static/cxsync.js"' in (TEMPLATES / "base.html").read_text()


def test_screenshots_are_copied_to_docs_only_when_asked(tmp_path, monkeypatch):
    """A test run leaves the tracked screenshots (docs/screenshots) alone: the tree is clean after tests."""
    shot = tmp_path / "status.png"
    shot.write_bytes(b"png")
    (tmp_path / "docs").mkdir()
    monkeypatch.setattr(conftest, "ROOT", tmp_path)
    monkeypatch.delenv(conftest.UPDATE_SCREENSHOTS, raising=False)
    conftest.copy_to_docs([shot])
    assert not (tmp_path / "docs" / "screenshots" / "status.png").exists()
    monkeypatch.setenv(conftest.UPDATE_SCREENSHOTS, "1")
    conftest.copy_to_docs([shot])
    assert (tmp_path / "docs" / "screenshots" / "status.png").read_bytes() == b"png"
    assert os.environ[conftest.UPDATE_SCREENSHOTS] == "1"
