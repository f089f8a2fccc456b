"""The demo playing the browser on the sandbox's HelpDesk authorize page: read the form, press the button."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from cxsync_dev.demo.state import StepFailed

if TYPE_CHECKING:
    pass


class _AuthorizeForm(HTMLParser):
    """An HTML page as a browser needs it here: title, visible text, and the first form's action, hidden
    fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}  # lower-case value -> (name, value)
        self.labels: dict[str, str] = {}  # lower-case value -> the button's text
        self.words: list[str] = []
        self._in_title = False
        self._button: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self._button = a.get("value", "").lower()
            self.buttons[self._button] = (a["name"], a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif self._button is not None:
            self.labels[self._button] = self.labels.get(self._button, "") + data.strip()
        elif data.strip():
            self.words.append(data.strip())

    @classmethod
    def parse(cls, html_text: str) -> _AuthorizeForm:
        page = cls()
        page.feed(html_text)
        return page


def play_browser(authorize_url: str, decision: str = "approve") -> Iterator[str]:
    """What a person's browser does with the authorize URL: open the page, press the button, follow the
    redirect to the command's loopback listener. Yields a plain sentence per step."""
    import requests

    with requests.Session() as browser:
        page = browser.get(authorize_url, timeout=30)
        page.raise_for_status()
        form = _AuthorizeForm.parse(page.text)
        if form.action is None or decision not in form.buttons:
            raise StepFailed(
                f"the authorize page at {authorize_url.split('?')[0]} has no form with a {decision!r} button"
            )
        labels = [form.labels.get(key) or value for key, (_, value) in form.buttons.items()]
        yield f"opened the authorize URL: a page titled {form.title!r} with the buttons {' and '.join(labels)}"
        name, value = form.buttons[decision]
        label = form.labels.get(decision) or value
        answer = browser.post(
            urljoin(authorize_url, form.action), data={**form.fields, name: value}, timeout=30, allow_redirects=False
        )
        target = answer.headers.get("Location", "")
        if answer.status_code not in (301, 302, 303, 307) or not target:
            raise StepFailed(
                f"pressing {label!r} on the authorize page answered {answer.status_code} without a redirect"
            )
        yield f"pressed {label}; the page sent the browser on to {target.split('?')[0]} with a code and the state"
        landing = browser.get(target, timeout=30)
        words = " ".join(_AuthorizeForm.parse(landing.text).words)
        yield f"the command's loopback listener answered {landing.status_code}: {words!r}"
