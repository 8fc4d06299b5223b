"""What a sample holds and what a writer wrote, so a test can check that every line ingested
is accepted, dropped as a duplicate or rejected with its reason: received = accepted +
duplicates + rejected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from devkit.sample_data.faults import CONFLICT, excluded_kinds
from devkit.sample_data.lines import Format


@dataclass(frozen=True)
class SampleSummary:
    """What a generated sample holds, as JSON Lines (`for_format` for the other formats).

    ``bad_lines`` maps reason code to count. Every line is received; valid events are accepted,
    duplicates are dropped, conflicts and bad lines are rejected (``rejected`` includes
    ``conflict``).
    """

    events_valid: int
    duplicates: int
    conflicts: int
    bad_lines: dict[str, int]
    customers: int
    format: Format = "jsonl"

    @property
    def bad_total(self) -> int:
        return sum(self.bad_lines.values())

    @property
    def rejected(self) -> dict[str, int]:
        reasons = {CONFLICT: self.conflicts} if self.conflicts else {}
        return {**reasons, **{k: v for k, v in self.bad_lines.items() if v}}

    @property
    def total_lines(self) -> int:
        return self.events_valid + self.duplicates + self.conflicts + self.bad_total

    def for_format(self, fmt: Format) -> SampleSummary:
        """The counts once written as ``fmt``: tabular files cannot hold some faults."""
        dropped = excluded_kinds(fmt)
        bad = {k: (0 if k in dropped else v) for k, v in self.bad_lines.items()}
        return SampleSummary(self.events_valid, self.duplicates, self.conflicts, bad,
                             self.customers, fmt)


@dataclass(frozen=True)
class FileSummary:
    """What one written file holds: every line is accepted, a duplicate, or rejected."""

    path: Path
    lines: int
    accepted: int
    duplicates: int
    rejected: dict[str, int]
    accepted_by_customer: dict[str, dict[str, int]]

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class WriteResult:
    """The files a writer produced (one unless ``parts`` > 1), with totals over them."""

    files: tuple[FileSummary, ...]

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def rejected(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.rejected)
        return dict(total)
