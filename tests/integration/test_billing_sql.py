"""`billing sql` reads the warehouse's tables and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main as billing


def test_billing_sql_reads_tables_but_no_file(billing_env, tmp_path: Path, capsys):
    billing(["sql", "SELECT count(*) AS invoices FROM billing.invoices"])
    assert "invoices" in capsys.readouterr().out
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nsk_live_x\n")
    leak = tmp_path / "leak.csv"
    for query in (f"SELECT * FROM read_csv('{secret}')",
                  f"COPY (SELECT 1) TO '{leak}'",
                  f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
                  "SET enable_external_access = true"):
        with pytest.raises(SystemExit, match="billing sql: "):
            billing(["sql", query])
    assert not leak.exists()
    assert "sk_live_x" not in capsys.readouterr().out
