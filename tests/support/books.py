"""A billing month rated at a chosen "now", without Dagster: the production steps of the billing
job (catalog tables, cuts due, usage measured, drafts rated, ledger written) and of ingestion,
called on one warehouse file the way `assets/billing.py` and the `ingest` fixture call them.

    books = Books(tmp_path)
    books.write_catalog(customers=CUSTOMERS, plans=PLANS, meters=METERS)
    books.land("jan", [event(...), ...], now=JAN_31)
    books.rate("2026-02", now=FEB_1_AT_3)        # the month's invoice issued after its grace
    books.rows("SELECT ... FROM billing.corrections")

Each call opens (and closes) a writer connection, unless inside ``with books.session():``, where
every call shares one connection (much faster for many small steps, e.g. a hypothesis example).
The catalog is loaded again, and its tables written again, only when its files changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from pipelines.catalog import load_catalog
from pipelines.catalog.models import Catalog
from pipelines.catalog.warehouse_tables import write_catalog_tables
from pipelines.ingestion import LandingIngestion, ingest_landed_files, landed_files, prepare_session
from pipelines.invoicing.corrections import decide
from pipelines.invoicing.ledger import LedgerUpdate, write_month
from pipelines.invoicing.month_cuts import draft_invoices, due_cuts
from pipelines.invoicing.usage_measurement import measure_month, stored_usage
from pipelines.warehouse import connect_writer, transaction
from tests.support.landing import write_lines


@dataclass
class Books:
    """One test's warehouse file, catalog folder and landing folder under `root`."""

    root: Path
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _loaded: tuple[bytes, Catalog] | None = field(default=None, repr=False)
    _tables_of: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.catalog_dir.mkdir(exist_ok=True)
        self.landing.mkdir(exist_ok=True)

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def write_catalog(self, **files: str) -> Catalog:
        """(Re)write catalog files, ``name=yaml_text`` each, and return the catalog loaded."""
        for name, text in files.items():
            (self.catalog_dir / f"{name}.yaml").write_text(text, encoding="utf-8")
        return self.catalog()

    def catalog(self) -> Catalog:
        files = b"\0".join(path.name.encode() + b"\0" + path.read_bytes()
                           for path in sorted(self.catalog_dir.glob("*.yaml")))
        if self._loaded is None or self._loaded[0] != files:
            self._loaded = (files, load_catalog(self.catalog_dir))
        return self._loaded[1]

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Share one writer connection between the calls made inside the block."""
        with connect_writer(str(self.warehouse)) as con:
            self._con = con
            try:
                yield con
            finally:
                self._con = None

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is not None:
            yield self._con
            return
        with connect_writer(str(self.warehouse)) as con:
            yield con

    def land(self, name: str, events: Sequence[object], *, now: datetime) -> LandingIngestion:
        """Write `events` as landing/<name>.jsonl and ingest that file as of `now`."""
        path = write_lines(self.landing / f"{name}.jsonl", list(events))
        files = [f for f in landed_files(self.landing) if Path(f.path) == path]
        customers = self.catalog().customers
        with self.connection() as con:
            prepare_session(con, customers, now)
            return ingest_landed_files(con, files, now=now, run_id=f"ingest:{name}")

    def rate(self, month: str, *, now: datetime, run_id: str = "test") -> LedgerUpdate:
        """The billing job's two assets for `month` as of `now`: the catalog tables refreshed,
        the usage of the due cuts measured and stored, the drafts rated and written (issued
        invoices corrected, due drafts and credit notes issued)."""
        catalog = self.catalog()
        cuts = due_cuts(catalog, month, now)
        with self.connection() as con:
            assert self._loaded is not None
            if self._tables_of != self._loaded[0]:
                write_catalog_tables(con, catalog)
                self._tables_of = self._loaded[0]
            measure_month(con, month, cuts, rated_at=now)
            drafts = draft_invoices(catalog, cuts, stored_usage(con, month))
            return write_month(con, month, drafts, catalog, now=now, run_id=run_id)

    def decide(self, correction_id: str, *, approve: bool, now: datetime,
               actor: str = "finance:test", reason: str | None = None) -> str | None:
        """`billing corrections approve|reject` on this warehouse; returns the document made."""
        catalog = self.catalog()
        with self.connection() as con, transaction(con):
            return decide(con, catalog, correction_id, approve=approve, actor=actor,
                          reason=reason, now=now)

    def rows(self, text: str, params: dict[str, object] | None = None) -> list[tuple]:
        with self.connection() as con:
            return con.execute(text, params or {}).fetchall()
