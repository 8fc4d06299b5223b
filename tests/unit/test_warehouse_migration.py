"""A warehouse written under contract v1 opens under v2 with its rows kept."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.warehouse import connect_writer


def test_v1_status_history_at_becomes_changed_at_with_rows_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "v1.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE SCHEMA billing")
    con.execute("""CREATE TABLE billing.invoice_status_history (invoice_id VARCHAR NOT NULL,
        from_status VARCHAR, to_status VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL,
        cause VARCHAR NOT NULL, actor VARCHAR NOT NULL)""")
    con.execute("""INSERT INTO billing.invoice_status_history VALUES
        ('inv_1', NULL, 'draft', TIMESTAMPTZ '2026-01-01 00:00:00+00', 'rated', 'billing_run')""")
    con.close()

    for _ in range(2):  # the second open finds nothing left to rename
        with connect_writer(path) as con:
            rows = con.execute("""SELECT invoice_id, to_status, CAST(changed_at AS VARCHAR)
                                  FROM billing.invoice_status_history""").fetchall()
            columns = [r[0] for r in con.execute("""SELECT column_name
                FROM information_schema.columns
                WHERE table_name = 'invoice_status_history'""").fetchall()]
    assert rows == [("inv_1", "draft", "2026-01-01 00:00:00+00")]
    assert "at" not in columns and "changed_at" in columns
