"""What commands print: tables and records for people, JSON for scripts."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pydantic import BaseModel

from gateway.commands.common import note, out


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def dump(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """`value` (a row or a dict) as the API shows it: through its response model."""
    return model.model_validate(value, from_attributes=True).model_dump(mode="json", by_alias=True)


def print_page(
    rows: list[dict[str, Any]],
    next_cursor: str | None,
    as_json: bool,
    columns: dict[str, str],
    what: str,
    shown: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """One page of a list: with --json as the API pages it, else as a table of `columns`
    (each row through `shown` first, for columns the API does not have)."""
    if as_json:
        print_json({"data": rows, "next_cursor": next_cursor})
    else:
        print_table(
            rows if shown is None else [shown(row) for row in rows], columns, what, next_cursor
        )


_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def cell(value: Any, key: str = "") -> Text:
    """A value for a table; `key` ending in _at or _since is a time, shown to the second."""
    if value is None or value == []:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list):
        return Text(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return Text(json.dumps(value, ensure_ascii=False))
    if isinstance(value, datetime):
        return Text(value.strftime("%Y-%m-%d %H:%M:%S"))
    if key.endswith(("_at", "_since")) and isinstance(value, str) and _ISO_TIME.match(value):
        return Text(value[:19].replace("T", " "))  # a time in the JSON form, to the second
    return Text(str(value))


def print_table(
    rows: Iterable[dict[str, Any]],
    columns: dict[str, str],
    what: str,
    next_cursor: str | None = None,
) -> None:
    """Rows as a table on stdout (`columns`: key -> heading); "no <what>" when empty."""
    rows = list(rows)
    if not rows:
        note(f"no {what}")
        return
    table = Table(header_style="bold")
    for key, heading in columns.items():
        is_id = key == "id" or key.endswith("_id")
        table.add_column(heading, no_wrap=is_id, min_width=len(heading), overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(key), key) for key in columns))
    out.print(table)
    if next_cursor is not None:
        note(f"[dim]more {what}: add --cursor {next_cursor}[/dim]")


def print_record(record: dict[str, Any], fields: dict[str, str] | None = None) -> None:
    """One object as a two-column table on stdout."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, label in (fields or {k: k for k in record}).items():
        table.add_row(label, cell(record.get(key), key))
    out.print(table)
