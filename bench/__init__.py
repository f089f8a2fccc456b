"""Benchmarks: `make bench` (or `python -m bench [name ...]`) runs each benchmark module here and writes its
section of docs/benchmarks.md.

A benchmark module defines `TITLE` (its section heading) and `run() -> str` (the section's Markdown body:
figures, what was measured and how). The runner adds the machine, the date and the command.
"""
