"""The benchmark's one table: every figure beside its reference, the ratio and the target."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """One row. ``ratio`` is value / reference; the target is either a bound on the value
    (``max_value`` / ``min_value``) or on the ratio (``min_ratio`` / ``max_ratio``)."""

    name: str
    value: float | None
    unit: str
    reference_name: str = ""
    reference: float | None = None
    target: str = ""
    min_value: float | None = None
    max_value: float | None = None
    min_ratio: float | None = None
    max_ratio: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def met(self) -> bool | None:
        """True or False against the target; None when not measured or there is no target."""
        if self.value is None:
            return None
        checks = []
        if self.min_value is not None:
            checks.append(self.value >= self.min_value)
        if self.max_value is not None:
            checks.append(self.value <= self.max_value)
        ratio = self.ratio
        if self.min_ratio is not None:
            checks.append(ratio is not None and ratio >= self.min_ratio)
        if self.max_ratio is not None:
            checks.append(ratio is not None and ratio <= self.max_ratio)
        return all(checks) if checks else None

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


HEADER = ("figure", "value", "unit", "reference", "ref value", "ratio", "target", "met")


def table_rows(figures: list[Figure]) -> list[tuple[str, ...]]:
    rows = []
    for figure in figures:
        ratio = figure.ratio
        met = {True: "yes", False: "NO", None: "-"}[figure.met]
        rows.append(
            (
                figure.name,
                _number(figure.value),
                figure.unit,
                figure.reference_name or "-",
                _number(figure.reference),
                f"{ratio:.2f}x" if ratio is not None else "-",
                figure.target or "-",
                met,
            )
        )
    return rows


def table_text(figures: list[Figure]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/performance.md)."""
    rows = [HEADER, *table_rows(figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def results_write(*, figures: list[Figure], meta: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "figures": [figure.as_dict() for figure in figures]}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def table_notes(figures: list[Figure]) -> str:
    """How each figure with a note was taken (printed under the table)."""
    return "\n".join(f"- {figure.name}: {figure.note}" for figure in figures if figure.note)
