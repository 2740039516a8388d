"""The one table (figure | gateway | yardstick | ratio | target) and its JSON twin."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).with_name("results")


@dataclass
class Row:
    figure: str
    gateway: float | None
    yardstick: float | None = None
    yardstick_name: str = ""
    unit: str = "/s"
    # Target on the ratio (gateway / yardstick), or on the gateway figure when `on` is
    # "gateway": (">=", 0.5) means at least 0.5.
    target: tuple[str, float] | None = None
    on: str = "ratio"
    # A target that is not a plain bound: its text, and whether it was met.
    target_label: str = ""
    verdict: bool | None = None
    void: bool = False
    note: str = ""
    section: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.gateway is None or not self.yardstick:
            return None
        return self.gateway / self.yardstick

    @property
    def passed(self) -> bool | None:
        if self.void:
            return None
        if self.target_label:
            return self.verdict
        if self.target is None:
            return None
        value = self.ratio if self.on == "ratio" else self.gateway
        if value is None:
            return None
        op, bound = self.target
        return value >= bound if op == ">=" else value < bound

    def target_text(self) -> str:
        if self.target_label:
            return self.target_label
        if self.target is None:
            return ""
        op, bound = self.target
        what = "x" if self.on == "ratio" else " " + self.unit.strip()
        return f"{op} {bound:g}{what}".replace(">=", "≥")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, passed=self.passed, target=self.target_text() or None)
        return data


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "MB":
        return f"{value / 1e6:,.1f} MB"
    if unit == "ms":
        digits = 3 if value < 1 else 1 if value < 100 else 0
        return f"{value:,.{digits}f} ms"
    if unit == "%":
        return f"{value:.0%}"
    if unit == "keys":
        return f"{value:,.0f} keys"
    return f"{value:,.3g} {unit}".strip()


def print_table(rows: list[Row], title: str) -> None:
    table = Table(title=title, show_lines=False)
    for name, justify in (
        ("figure", "left"),
        ("gateway", "right"),
        ("yardstick", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("note", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    section = None
    for row in rows:
        if section is not None and row.section != section:
            table.add_section()
        section = row.section
        gateway = "[bold red]VOID[/]" if row.void else fmt(row.gateway, row.unit)
        yardstick = fmt(row.yardstick, row.unit)
        if row.yardstick_name and row.yardstick is not None:
            yardstick += f" ({row.yardstick_name})"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        mark = {True: " [green]✓[/]", False: " [red]✗[/]", None: ""}[row.passed]
        table.add_row(row.figure, gateway, yardstick, ratio, row.target_text() + mark, row.note)
    Console(width=max(160, Console().width)).print(table)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def save(rows: list[Row], options: dict[str, Any], extra: dict[str, Any]) -> Path:
    """bench/results/<UTC time>.json: the rows, options, machine and commit."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
    document = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "commit": _git("rev-parse", "--short", "HEAD") or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "options": options,
        "rows": [row.as_json() for row in rows],
        **extra,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
