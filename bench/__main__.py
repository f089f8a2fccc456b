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
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def write_section(name: str, title: str, body: str, command: str, seconds: float) -> None:
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- Machine: {machine()}\n- Date: {stamp}\n- Command: `{command}` (took {seconds:.0f} s)\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n?", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


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
        started = time.monotonic()
        body = module.run()
        elapsed = time.monotonic() - started
        command = f"python -m bench {name}" if args.names else "make bench"
        write_section(name, module.TITLE, body, command, elapsed)
        print(body, flush=True)
    print(f"written: {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
