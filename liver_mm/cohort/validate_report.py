"""Findings and the validation report shared by the manifest and lab validators."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from liver_mm.io.schema import line_numbers

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: where (CSV ``row`` = line number, ``case_id``, ``column``), a stable ``code``,
    and a ``message`` that says what to do. ``row`` is None for column-wide findings."""

    severity: Severity
    code: str
    message: str
    row: int | None = None
    case_id: str | None = None
    column: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"row": self.row, "case_id": self.case_id, "column": self.column,
                "code": self.code, "message": self.message}

    def __str__(self) -> str:
        where = [self.source or "", f"line {self.row}" if self.row is not None else ""]
        loc = ", ".join(w for w in where if w)
        extra = [f"case {self.case_id}" if self.case_id is not None else "",
                 f"column {self.column}" if self.column else ""]
        detail = ", ".join(e for e in extra if e)
        head = f"{loc} ({detail})" if loc and detail else loc or detail
        return f"{self.severity.upper()} [{self.code}] {head + ': ' if head else ''}{self.message}"


@dataclass
class ValidationReport:
    """All findings of one validation; ``ok`` when there is no error (warnings allowed)."""

    source: str
    findings: list[Finding] = field(default_factory=list)
    n_rows: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self, severity: Severity | None = None) -> set[str]:
        """The distinct finding codes (of one severity, or all)."""
        return {f.code for f in self.findings if severity in (None, f.severity)}

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        """``{"errors": [...], "warnings": [...]}``, items with row, case_id, column, code, message."""
        return {"errors": [f.to_dict() for f in self.errors],
                "warnings": [f.to_dict() for f in self.warnings]}

    def format_text(self) -> str:
        """Readable findings, errors first, then a one-line verdict."""
        body = [str(f) for f in (*self.errors, *self.warnings)]
        verdict = (f"{self.source}: {self.n_rows} rows, {len(self.errors)} error(s), "
                   f"{len(self.warnings)} warning(s) -> " + ("usable" if self.ok else "NOT usable"))
        return "\n".join([*body, verdict])


class ManifestValidationError(ValueError):
    """The manifest is not usable; ``.report`` holds the findings, ``str()`` reads them out."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.format_text())
        self.report = report


class Collector(list):
    """Builds :class:`Finding` s for rows of one frame (index labels -> CSV line and case_id)."""

    def __init__(self, df: pd.DataFrame, source: str) -> None:
        super().__init__()
        self.source = source
        self.units: dict[str, str] = {}  # declared units, for messages
        self.lines = line_numbers(df)
        ids = df["case_id"] if "case_id" in df.columns else pd.Series(None, index=df.index, dtype=object)
        self.ids = ids.map(lambda v: str(v) if isinstance(v, str) else None)

    def add(self, severity: Severity, code: str, message: str, idx: object = None,
            column: str | None = None) -> None:
        """Record a finding about row ``idx`` (an index label) or, with ``idx=None``, a whole column."""
        row = case = None
        if idx is not None:
            line = self.lines.get(idx)
            row = None if line is None or pd.isna(line) else int(line)
            case = self.ids.get(idx)
        self.append(Finding(severity, code, message, row, case, column, self.source))

    def where(self, labels: Iterable[object], limit: int = 8) -> str:
        """'lines 3, 7, 9 and 4 more' for a set of index labels."""
        nums = [int(n) for i in labels if (n := self.lines.get(i)) is not None and not pd.isna(n)]
        shown = ", ".join(map(str, nums[:limit]))
        more = f" and {len(nums) - limit} more" if len(nums) > limit else ""
        return f"line{'s' if len(nums) != 1 else ''} {shown}{more}"

    def case(self, idx: object) -> str:
        """'line 5 (case c3)' for one row."""
        cid = self.ids.get(idx)
        return f"line {self.lines.get(idx)}" + (f" (case {cid})" if cid else "")
