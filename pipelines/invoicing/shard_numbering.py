"""Invoice and credit note numbers across customer shards: gap-free per billing month.

With one warehouse a document is numbered when it reaches `issued` (`status.number_invoices`,
`corrections.number_credit_notes`), in the order (boundary, customer, invoice) within a batch
for invoices and (invoice, credit note) for credit notes. With N shards a shard never numbers
(`numbering_deferred`): it issues, and this global step, run after the shards' billing, gives
the numbers in the order of issue across every shard, the same order one warehouse uses:
invoices by (issued_at, boundary, customer_id, invoice_id), credit notes by (issued_at,
invoice_id, credit_note_id), per billing month.

The numbers given are kept first in a small ledger beside the warehouse
(`warehouse.numbers.duckdb`), then written to each shard: a step interrupted between shards is
run again and writes the same numbers, so no number is lost or given twice. A shard never waits
on another for a number; only this step, one at a time, reads them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines import settings
from pipelines.warehouse import connect_reader, connect_writer, warehouse_lock

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS document_numbers (
    kind          VARCHAR NOT NULL,   -- invoice | credit_note
    document_id   VARCHAR NOT NULL,
    billing_month VARCHAR NOT NULL,
    sequence      INTEGER NOT NULL,
    number        VARCHAR NOT NULL,
    PRIMARY KEY (kind, document_id)
)"""

# kind -> (table, id column, number column, prefix, order within a month after issued_at)
KINDS = {
    "invoice": ("billing.invoices", "invoice_id", "invoice_number", "INV",
                "boundary, customer_id, invoice_id"),
    "credit_note": ("billing.credit_notes", "credit_note_id", "credit_note_number", "CN",
                    "invoice_id, credit_note_id"),
}


def numbering_deferred() -> bool:
    """True with customer shards: a shard issues documents and leaves their numbers to the
    global numbering step (`number_documents`)."""
    return settings.shard_count() > 1


def ledger_path(base: str | None = None) -> str:
    """The numbering ledger beside the configured warehouse."""
    path = Path(base or settings.warehouse_path())
    return str(path.with_name(f"{path.stem}.numbers{path.suffix}"))


@dataclass(frozen=True)
class NumberingResult:
    """How many numbers the step gave now, by kind."""

    invoices: int
    credit_notes: int


def _unnumbered(paths: list[str], kind: str) -> list[tuple]:
    table, id_column, number_column, _, order = KINDS[kind]
    order_columns = [c.strip() for c in order.split(",")]
    rows: list[tuple] = []
    for path in paths:
        with connect_reader(path) as con:
            rows += con.execute(f"""
                SELECT {id_column}, billing_month, issued_at, {', '.join(order_columns)}
                FROM {table}
                WHERE {number_column} IS NULL AND issued_at IS NOT NULL""").fetchall()
    return rows


def number_documents(paths: list[str], *, ledger: str | None = None) -> NumberingResult:
    """Give every issued, unnumbered invoice and credit note of these shard warehouses its
    gap-free number of its billing month, in the order of issue across all shards."""
    ledger = ledger or ledger_path()
    given: dict[str, int] = {}
    with warehouse_lock(ledger, exclusive=True):
        con = duckdb.connect(ledger)
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(LEDGER_SCHEMA)
            for kind, (_, _, _, prefix, order) in KINDS.items():
                rows = _unnumbered(paths, kind)
                given[kind] = _record(con, kind, prefix, order, rows)
            assignments = con.execute(
                "SELECT kind, document_id, number FROM document_numbers").fetchall()
        finally:
            con.close()
    _write_numbers(paths, assignments)
    return NumberingResult(given.get("invoice", 0), given.get("credit_note", 0))


def _record(con: duckdb.DuckDBPyConnection, kind: str, prefix: str, order: str,
            rows: list[tuple]) -> int:
    """Number in the ledger the documents it does not know yet; returns how many."""
    order_columns = [c.strip() for c in order.split(",")]
    con.execute("CREATE OR REPLACE TEMP TABLE candidates (document_id VARCHAR, "
                "billing_month VARCHAR, issued_at TIMESTAMPTZ, "
                + ", ".join(f"{c} VARCHAR" for c in order_columns) + ")")
    if rows:
        marks = ", ".join("?" * (3 + len(order_columns)))
        con.executemany(f"INSERT INTO candidates VALUES ({marks})",
                        [tuple(str(v) if i >= 3 and v is not None else v
                               for i, v in enumerate(row)) for row in rows])
    before = con.execute("SELECT count(*) FROM document_numbers").fetchall()[0][0]
    con.execute(f"""
        INSERT INTO document_numbers
        SELECT $kind, c.document_id, c.billing_month, s.sequence,
               printf('{prefix}-%s-%05d', replace(c.billing_month, '-', ''), s.sequence)
        FROM candidates c
        JOIN (SELECT document_id,
                     coalesce((SELECT max(sequence) FROM document_numbers d
                               WHERE d.kind = $kind AND d.billing_month = n.billing_month), 0)
                     + row_number() OVER (PARTITION BY billing_month
                                          ORDER BY issued_at, {order}) AS sequence
              FROM candidates n
              WHERE document_id NOT IN (SELECT document_id FROM document_numbers
                                        WHERE kind = $kind)) s USING (document_id)""",
                {"kind": kind})
    after = con.execute("SELECT count(*) FROM document_numbers").fetchall()[0][0]
    con.execute("DROP TABLE candidates")
    return after - before


def _write_numbers(paths: list[str], assignments: list[tuple]) -> None:
    """Each shard's documents get their ledger numbers (those still without one)."""
    for path in paths:
        with connect_writer(path) as con:
            con.execute("CREATE OR REPLACE TEMP TABLE given_numbers "
                        "(kind VARCHAR, document_id VARCHAR, number VARCHAR)")
            if assignments:
                con.executemany("INSERT INTO given_numbers VALUES (?, ?, ?)", assignments)
            con.execute("BEGIN TRANSACTION")
            for kind, (table, id_column, number_column, _, _) in KINDS.items():
                con.execute(f"""
                    UPDATE {table} AS t SET {number_column} = g.number
                    FROM given_numbers g
                    WHERE g.kind = '{kind}' AND g.document_id = t.{id_column}
                      AND t.{number_column} IS NULL""")
            con.execute("COMMIT")
            con.execute("DROP TABLE given_numbers")
