"""Run the benchmarks and write their sections of docs/benchmarks.md (other sections are kept)."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Written by `make bench` (`python -m bench`); each section is replaced when its benchmark runs again.
Figures depend on the machine: each section names the one it ran on.
"""


def benchmark_names() -> list[str]:
    return sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_"))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {_ram()} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def load_average() -> str:
    """The 1-minute load average when the benchmark started: other work on the machine skews every figure."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} (5 min: {five:.2f}) on {os.cpu_count()} CPUs"


def write_section(name: str, title: str, body: str, command: str, seconds: float, load: str = "") -> None:
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_line = f"- Load average at start: {load}\n" if load else ""
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- Machine: {machine()}\n- Date: {stamp}\n{load_line}- Command: `{command}` (took {seconds:.0f} s)\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    text = _put_section(text, name, section)
    text = _put_section(text, "summary", summary_section(text), first=True)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def _put_section(text: str, name: str, section: str, first: bool = False) -> str:
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n?", re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text)
    if first:  # before the first benchmark section, after the page's own introduction
        at = text.find("<!-- bench:")
        if at >= 0:
            return text[:at] + section + "\n" + text[at:]
    return text.rstrip("\n") + "\n\n" + section


def summary_section(text: str) -> str:
    """One line per benchmark section of the page: its title, date and how many of its targets are met.
    Sections written before the runner dropped the blank line after the marker count too."""
    rows = []
    for match in re.finditer(r"<!-- bench:(\w+) -->\n+## (.*?)\n(.*?)<!-- /bench:\1 -->", text, re.DOTALL):
        name, title, body = match.groups()
        if name == "summary":
            continue
        date = re.search(r"- Date: (.*)", body)
        met, not_met = body.count("**met**"), body.count("**not met**")
        verdict = "no target" if met + not_met == 0 else f"{met} of {met + not_met} met"
        if not_met:
            verdict = f"**{not_met} of {met + not_met} not met** (see the section)"
        rows.append(f"| [{title}](#{_anchor(title)}) | {verdict} | {date.group(1) if date else '?'} |")
    return (
        "<!-- bench:summary -->\n## Summary\n\n| benchmark | targets | measured |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n<!-- /bench:summary -->\n"
    )


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {benchmark_names()})")
    args = parser.parse_args(argv)
    names = args.names or benchmark_names()
    unknown = sorted(set(names) - set(benchmark_names()))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {benchmark_names()}")
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}: {module.TITLE}", flush=True)
        load = load_average()
        started = time.monotonic()
        body = module.run()
        elapsed = time.monotonic() - started
        command = f"python -m bench {name}" if args.names else "make bench"
        write_section(name, module.TITLE, body, command, elapsed, load)
        print(body, flush=True)
    print(f"written: {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
