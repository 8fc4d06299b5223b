"""An erasure in the warehouse (contract section 11): the customer's personal data replaced by
its pseudonym in every table, amounts and documents untouched, the pass recorded.

Where the warehouse holds personal data, and how each place is rewritten:

- `billing.customers`: name, email and metadata values, field by field (only that row: another
  customer whose name contains the erased one's is left alone);
- `raw.events.properties`: the values of the catalog's `personal_properties` in the customer's
  events, each by its own pseudonym (distinct values stay distinct, so unique counts hold);
  the payload digest is kept, so a re-sent original is still a duplicate, not a conflict;
- `raw.rejected_events.raw`: the customer's rejected and conflicting lines, their personal
  properties pseudonymised the same way (a line that is not JSON is replaced by a marker; the
  reason, detail and counts stay);
- every other VARCHAR and JSON column of every table (notification payloads, Stripe's event
  and invoice copies, alerts, attempts' errors, and any table added later): each occurrence of
  the customer's name, email or metadata values, as text or JSON-escaped, in any case.

New rows of an erased customer (events and rejected lines ingested later) get their personal
properties pseudonymised in the transaction that ingests them (`pseudonymise_new_rows`); the
catalog step writes an erased customer pseudonymised (`erase_catalog_customers`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from pipelines.erasure.pseudonyms import (
    customer_pseudonym,
    email_pseudonym,
    erased_customer_fields,
    is_pseudonym,
    pseudonymise_properties,
    replace_terms,
    sweep_terms,
    text_forms,
    value_pseudonym,
)

RECORD_TABLES = frozenset({"billing.erasures", "billing.erasure_requests"})
"""The erasure's own record: never swept (it holds no name or email)."""
STRUCTURAL_TABLES = frozenset({"billing.customers"})
"""Rewritten field by field for the erased customer only, never swept."""
REMOVED_LINE = '{{"erased": "{pseudonym}", "note": "line removed on erasure: not JSON"}}'


@dataclass(frozen=True)
class Erased:
    """A customer's erasure as recorded: its salt and pseudonym, the passes so far."""

    customer_id: str
    salt: str
    pseudonym: str
    passes: int
    first_at: datetime
    first_actor: str


def recorded_erasure(con: duckdb.DuckDBPyConnection, customer_id: str) -> Erased | None:
    """The customer's erasure record, or None when it was never erased."""
    rows = con.execute("""
        SELECT salt, pseudonym, pass, erased_at, actor FROM billing.erasures
        WHERE customer_id = $id ORDER BY pass""", {"id": customer_id}).fetchall()
    if not rows:
        return None
    salt, pseudonym, _, first_at, actor = rows[0]
    return Erased(customer_id, salt, pseudonym, rows[-1][2], first_at, actor)


def erased_salts(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every erased customer's salt, by customer id."""
    return dict(con.execute("SELECT customer_id, min(salt) FROM billing.erasures "
                            "GROUP BY customer_id").fetchall())


def personal_values(con: duckdb.DuckDBPyConnection, customer_id: str
                    ) -> dict[str, list[str]]:
    """The customer's personal strings as billing.customers holds them now."""
    row = con.execute("SELECT name, email, metadata FROM billing.customers "
                      "WHERE customer_id = $id", {"id": customer_id}).fetchall()
    if not row:
        return {"name": [], "email": [], "metadata": []}
    name, email, metadata = row[0]
    values = json.loads(metadata) if metadata else {}
    return {"name": [name] if name else [], "email": [email] if email else [],
            "metadata": [str(v) for v in values.values()]}


def replacements_for(customer_id: str, salt: str, values: Mapping[str, Iterable[str]]
                     ) -> dict[str, str]:
    """Each personal string (in each form it is stored in) -> what replaces it."""
    pseudonym = customer_pseudonym(customer_id, salt)
    targets = {"name": lambda _v: pseudonym, "email": lambda _v: email_pseudonym(pseudonym),
               "metadata": lambda v: value_pseudonym(customer_id, salt, v)}
    result: dict[str, str] = {}
    for kind in ("metadata", "name", "email"):      # a name equal to a metadata value: name
        for term in sweep_terms(values.get(kind, ()), customer_id):
            for form in text_forms(term):
                result[form] = targets[kind](term)
    return result


def erase_in_warehouse(con: duckdb.DuckDBPyConnection, customer_id: str, salt: str, *,
                       replacements: Mapping[str, str], personal_paths: Iterable[str],
                       ) -> dict[str, int]:
    """Pseudonymise the customer everywhere in the warehouse (inside the caller's
    transaction); returns the rows changed per `schema.table.column`."""
    paths = tuple(personal_paths)
    changes: dict[str, int] = {}
    changes.update(_erase_customer_row(con, customer_id, salt))
    changes.update(_erase_events(con, customer_id, salt, paths, "customer_id = $id",
                                 {"id": customer_id}))
    changes.update(_erase_rejected(con, {customer_id: salt}, paths, replacements, "TRUE", {}))
    for key, count in _sweep(con, replacements).items():
        changes[key] = changes.get(key, 0) + count
    return {k: v for k, v in sorted(changes.items()) if v}


def _erase_customer_row(con: duckdb.DuckDBPyConnection, customer_id: str, salt: str
                        ) -> dict[str, int]:
    rows = con.execute("SELECT name, email, metadata FROM billing.customers "
                       "WHERE customer_id = $id", {"id": customer_id}).fetchall()
    if not rows:
        return {}
    name, email, metadata = rows[0]
    fields = {"name": name, "email": email, "metadata": json.loads(metadata or "{}")}
    erased = erased_customer_fields(fields, customer_id, salt)
    changes = {f"billing.customers.{k}": int(erased[k] != fields[k]) for k in fields}
    if any(changes.values()):
        con.execute("""UPDATE billing.customers SET name = $name, email = $email,
                       metadata = $metadata WHERE customer_id = $id""",
                    {"name": erased["name"], "email": erased["email"],
                     "metadata": json.dumps(erased["metadata"], sort_keys=True),
                     "id": customer_id}).fetchall()
    return changes


def _erase_events(con: duckdb.DuckDBPyConnection, customer_id: str, salt: str,
                  paths: tuple[str, ...], where: str, params: dict[str, Any]
                  ) -> dict[str, int]:
    """The personal properties of the events matching `where` (of one customer)."""
    if not paths:
        return {}
    updates = []
    for source, event_id, properties in con.execute(
            f"SELECT source, event_id, CAST(properties AS VARCHAR) FROM raw.events "
            f"WHERE {where}", params).fetchall():
        new, replaced = pseudonymise_properties(json.loads(properties), paths, customer_id,
                                                salt)
        if replaced:
            updates.append({"source": source, "event_id": event_id,
                            "properties": json.dumps(new, separators=(",", ":"))})
    if updates:
        con.register("erasure_event_updates", pl.DataFrame(updates).to_arrow())
        try:
            con.execute("""UPDATE raw.events e SET properties = CAST(u.properties AS JSON)
                           FROM erasure_event_updates u
                           WHERE e.source = u.source AND e.event_id = u.event_id""").fetchall()
        finally:
            con.unregister("erasure_event_updates")
    return {"raw.events.properties": len(updates)}


def _erase_rejected(con: duckdb.DuckDBPyConnection, salts: Mapping[str, str],
                    paths: tuple[str, ...], replacements: Mapping[str, str], where: str,
                    params: dict[str, Any]) -> dict[str, int]:
    """The raw text of the rejected lines matching `where` of the customers of `salts`: those
    the line's customer_id names, and lines too broken to have one whose text names the
    customer's id as a JSON string."""
    updates = []
    for rowid, customer_id, raw in con.execute(f"""
            SELECT r.rowid, e.customer_id, r.raw FROM raw.rejected_events r
            JOIN (SELECT unnest($erased_ids) AS customer_id) e
              ON r.customer_id = e.customer_id
              OR (r.customer_id IS NULL AND strpos(r.raw, '"' || e.customer_id || '"') > 0)
            WHERE r.raw IS NOT NULL AND {where}
            QUALIFY row_number() OVER (PARTITION BY r.rowid ORDER BY e.customer_id) = 1""",
                                               {**params, "erased_ids": sorted(salts)}
                                               ).fetchall():
        new = _erased_line(raw, customer_id, salts[customer_id], paths, replacements)
        if new != raw:
            updates.append({"rid": rowid, "raw": new})
    if updates:
        con.register("erasure_rejected_updates", pl.DataFrame(updates).to_arrow())
        try:
            con.execute("""UPDATE raw.rejected_events SET raw = u.raw
                           FROM erasure_rejected_updates u
                           WHERE raw.rejected_events.rowid = u.rid""").fetchall()
        finally:
            con.unregister("erasure_rejected_updates")
    return {"raw.rejected_events.raw": len(updates)}


def _erased_line(raw: str, customer_id: str, salt: str, paths: tuple[str, ...],
                 replacements: Mapping[str, str]) -> str:
    """A rejected line of an erased customer: its personal properties (native `properties`
    or CloudEvents `data`) pseudonymised and its personal strings replaced; a line that is
    not a JSON object is replaced by a marker (nothing in it can be told apart)."""
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return REMOVED_LINE.format(pseudonym=customer_pseudonym(customer_id, salt))
    for key in ("properties", "data"):
        value = document.get(key)
        if isinstance(value, str):                  # CSV: properties as a JSON string
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            new, replaced = pseudonymise_properties(parsed, paths, customer_id, salt)
            if replaced:
                document[key] = json.dumps(new, separators=(",", ":"))
        elif isinstance(value, dict):
            document[key], _ = pseudonymise_properties(value, paths, customer_id, salt)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    text = replace_terms(text, replacements) if replacements else text
    return raw if json.loads(text) == json.loads(raw) else text


def swept_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every VARCHAR and JSON column of every table of the
    warehouse (not views, not temp tables)."""
    return [tuple(row) for row in con.execute("""
        SELECT c.table_schema, c.table_name, c.column_name
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE t.table_type = 'BASE TABLE' AND c.table_catalog NOT IN ('temp', 'system')
          AND c.data_type IN ('VARCHAR', 'JSON')
        ORDER BY 1, 2, 3""").fetchall()]


def _sweep(con: duckdb.DuckDBPyConnection, replacements: Mapping[str, str]) -> dict[str, int]:
    """Each personal string replaced in every text column of every other table."""
    changes: dict[str, int] = {}
    if not replacements:
        return changes
    lowered = sorted({term.lower() for term in replacements})
    for schema, table, column in swept_columns(con):
        if f"{schema}.{table}" in RECORD_TABLES | STRUCTURAL_TABLES:
            continue
        text = f'CAST("{column}" AS VARCHAR)'
        matches = " OR ".join(f"strpos(lower({text}), $t{i}) > 0" for i in range(len(lowered)))
        rows = con.execute(f'SELECT rowid, {text} FROM "{schema}"."{table}" WHERE {matches}',
                           {f"t{i}": t for i, t in enumerate(lowered)}).fetchall()
        updates = [{"rid": rid, "value": new} for rid, value in rows
                   if (new := replace_terms(value, replacements)) != value]
        if not updates:
            continue
        con.register("erasure_sweep_updates", pl.DataFrame(updates).to_arrow())
        try:
            con.execute(f'UPDATE "{schema}"."{table}" SET "{column}" = u.value '
                        f'FROM erasure_sweep_updates u '
                        f'WHERE "{schema}"."{table}".rowid = u.rid').fetchall()
        finally:
            con.unregister("erasure_sweep_updates")
        changes[f"{schema}.{table}.{column}"] = len(updates)
    return changes


def pseudonymise_new_rows(con: duckdb.DuckDBPyConnection, where: str,
                          params: dict[str, Any], rejected_where: str | None = None,
                          ) -> dict[str, int]:
    """Erased customers' events (those matching `where`) and rejected lines (matching
    `rejected_where`, default `where`) just ingested from a file or a re-processing pass,
    their personal properties pseudonymised in the ingesting transaction. Costs one small
    query when nobody was erased."""
    salts = erased_salts(con)
    if not salts:
        return {}
    paths = tuple(row[0] for row in con.execute(
        "SELECT property_path FROM billing.personal_properties ORDER BY 1").fetchall())
    changes: dict[str, int] = {}
    erased = "customer_id IN (SELECT customer_id FROM billing.erasures)"
    for customer_id, in con.execute(
            f"SELECT DISTINCT customer_id FROM raw.events WHERE {where} AND {erased}",
            params).fetchall():
        for key, count in _erase_events(con, customer_id, salts[customer_id], paths,
                                        f"customer_id = $cid AND {where}",
                                        {**params, "cid": customer_id}).items():
            changes[key] = changes.get(key, 0) + count
    for key, count in _erase_rejected(con, salts, paths, {}, rejected_where or where,
                                      params).items():
        changes[key] = changes.get(key, 0) + count
    return {k: v for k, v in changes.items() if v}


def erase_catalog_customers(con: duckdb.DuckDBPyConnection, customers: pl.DataFrame
                            ) -> tuple[pl.DataFrame, list[str]]:
    """The billing.customers frame a catalog step writes, erased customers pseudonymised
    (whatever their source still says), and a warning per customer whose source (a YAML
    file or a bulk table the user maintains) still holds personal fields."""
    salts = erased_salts(con)
    if not salts or customers.is_empty():
        return customers, []
    rows, warnings = [], []
    for row in customers.iter_rows(named=True):
        salt = salts.get(row["customer_id"])
        if salt is not None:
            fields = {"name": row["name"], "email": row["email"],
                      "metadata": json.loads(row["metadata"] or "{}")}
            erased = erased_customer_fields(fields, row["customer_id"], salt)
            left = [k for k in fields if fields[k] != erased[k]
                    and not (k == "name" and fields[k] == row["customer_id"])
                    and not is_pseudonym(fields[k])]
            if left:
                warnings.append(
                    f"{row['source_file']}: customers[{row['customer_id']}]: the customer was "
                    f"erased but its {', '.join(left)} still hold personal data; they are "
                    "written pseudonymised: remove them from the source")
            row = {**row, "name": erased["name"], "email": erased["email"],
                   "metadata": json.dumps(erased["metadata"], sort_keys=True)}
        rows.append(row)
    return pl.DataFrame(rows, schema=customers.schema), warnings
