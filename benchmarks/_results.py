"""Where the benchmark scripts write what they measured: ``benchmarks/results/STEM.json`` (every
number) and ``STEM.md`` (the table the README quotes), the table also printed."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(stem: str, report: dict, markdown: str) -> None:
    """Write ``report`` as ``STEM.json`` and ``markdown`` as ``STEM.md`` under :data:`RESULTS`; print the table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (RESULTS / f"{stem}.md").write_text(markdown)
    print(markdown)
