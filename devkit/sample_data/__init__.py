"""Sample usage events for demos, tests and benchmarks (contract section 1).

`generate_events` plans a month of realistic usage for the customers of a catalog (`plan`) and
`write_jsonl`, `write_csv` and `write_parquet` stream it to files (`writers`), with a few
deliberate faults whose counts are known in advance (`faults`), so ingestion can be checked
against them. For larger volumes write a catalog with `write_benchmark_catalog` (`catalogs`).

- What events a month holds: `plan` (who sends what, when), `sample` (timestamps, sources, ids,
  rows chunk by chunk), `properties` (what each event's properties carry).
- ``cloudevents_share`` of the events are CloudEvents 1.0 structured JSON (id, source, type,
  subject, time, data); the others are native. In CSV and Parquet every row is native (`lines`).
- Faults, each line one kind (`FAULT_KINDS`): duplicates, conflicts and bad lines of each reason
  of `REJECT_REASONS`. Defaults: 0.1% of ``events`` each for duplicates, conflicts and bad lines,
  at least one duplicate and one conflict and one bad line of every reason once ``events`` >= 100
  (none below). ``events`` counts the valid events; the file holds ``events + duplicates +
  conflicts + bad lines`` lines. `SampleSummary.for_format` gives the counts for CSV and Parquet,
  and every writer returns what it wrote per file, so a test can check received = accepted +
  duplicates + rejected.

Output is deterministic: the same catalog, arguments and seed give the same bytes (with these
pinned versions of polars and Python). Events are produced in chunks of ``chunk_events``; the
chunk size is part of the recipe. Columns are generated vectorised from random bytes, so ten
million events are a matter of seconds and memory stays bounded by the chunk size. Events of the
current month may lie in the future: set ``BILLING_NOW`` when ingesting them.
"""

from devkit.sample_data.catalogs import write_benchmark_catalog
from devkit.sample_data.faults import (
    CONFLICT,
    DUPLICATE,
    EVENT_ID_TOO_LONG,
    FAULT_KINDS,
    KINDS,
    MALFORMED_LINE,
    MISSING_FIELD,
    PROPERTIES_NOT_OBJECT,
    REJECT_REASONS,
    TIMESTAMP_WITHOUT_OFFSET,
    UNKNOWN_CUSTOMER,
)
from devkit.sample_data.lines import NATIVE_COLUMNS, Format, render_line
from devkit.sample_data.plan import generate_events
from devkit.sample_data.sample import SOURCES, GeneratedSample
from devkit.sample_data.summary import FileSummary, SampleSummary, WriteResult
from devkit.sample_data.writers import write_csv, write_jsonl, write_parquet

__all__ = [
    "CONFLICT",
    "DUPLICATE",
    "EVENT_ID_TOO_LONG",
    "FAULT_KINDS",
    "KINDS",
    "MALFORMED_LINE",
    "MISSING_FIELD",
    "NATIVE_COLUMNS",
    "PROPERTIES_NOT_OBJECT",
    "REJECT_REASONS",
    "SOURCES",
    "TIMESTAMP_WITHOUT_OFFSET",
    "UNKNOWN_CUSTOMER",
    "FileSummary",
    "Format",
    "GeneratedSample",
    "SampleSummary",
    "WriteResult",
    "generate_events",
    "render_line",
    "write_benchmark_catalog",
    "write_csv",
    "write_jsonl",
    "write_parquet",
]
