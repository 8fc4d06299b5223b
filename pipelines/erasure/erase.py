"""`billing customer erase`: one customer's erasure end to end (contract section 11).

Order matters for a pass cut short: the API store is rewritten first and the warehouse second,
so a failure leaves the personal strings somewhere a re-run finds them (the warehouse's
customer row, the store's versions or the catalog); the salt is the recorded one, else the
store's, else a new one. The provider requests go last, with the warehouse released.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pipelines.api.store.erasures import ErasureStore
from pipelines.catalog.loader import API_STORE_SOURCE
from pipelines.catalog.models import Catalog
from pipelines.erasure.providers import (
    ProviderRequest,
    anonymise_at_stripe,
    provider_requests,
    queue_requests,
)
from pipelines.erasure.pseudonyms import customer_pseudonym, new_salt, personal_fields_left
from pipelines.erasure.warehouse_erasure import (
    erase_in_warehouse,
    personal_values,
    recorded_erasure,
    replacements_for,
)
from pipelines.warehouse import connect_writer, transaction


class ErasureRefused(Exception):
    """The erasure cannot be done (an unknown customer); nothing was changed."""


@dataclass
class ErasureReport:
    """What one `billing customer erase` did, and what is left pending."""

    customer_id: str
    pseudonym: str
    erasure_pass: int | None              # the pass recorded now; None: nothing left to change
    first_erased_at: datetime
    first_actor: str
    warehouse: dict[str, int] = field(default_factory=dict)
    api_store: dict[str, int] = field(default_factory=dict)
    providers: list[ProviderRequest] = field(default_factory=list)
    source_warning: str | None = None


def erase_customer(catalog: Catalog, customer_id: str, *, reason: str, actor: str,
                   now: datetime, warehouse: str, api_store: str,
                   make_stripe_gateway: Callable[..., Any] | None = None) -> ErasureReport:
    """Pseudonymise the customer in the API store and the warehouse, record the pass, ask
    the provider apps; refuse an unknown customer before writing anything."""
    with connect_writer(warehouse) as con:
        recorded = recorded_erasure(con, customer_id)
        in_warehouse = personal_values(con, customer_id)
        known_rows = con.execute("SELECT count(*) FROM billing.customers WHERE customer_id = $id",
                                 {"id": customer_id}).fetchall()[0][0]
    entry = catalog.customers.get(customer_id)
    if entry is None and not known_rows and recorded is None:
        raise ErasureRefused(f"unknown customer {customer_id!r}: no customer of the catalog "
                             "(YAML, bulk tables, the API's CRM entries) or the warehouse has "
                             "this id; nothing was changed")
    store = ErasureStore(api_store)
    salt = (recorded.salt if recorded else None) or store.erased_salt(customer_id) or new_salt()
    pseudonym = customer_pseudonym(customer_id, salt)
    values: dict[str, list[str]] = {k: list(v) for k, v in in_warehouse.items()}
    if entry is not None:
        values["name"].append(entry.name)
        values["email"] += [entry.email] if entry.email else []
        values["metadata"] += list(entry.metadata.values())
    store_values = store.personal_values(customer_id)
    values["metadata"] += store_values      # the CRM's past names, emails and metadata values
    replacements = replacements_for(customer_id, salt, values)
    api_changes = store.erase(customer_id, pseudonym=pseudonym, salt=salt,
                              replacements=replacements, at=now)
    with connect_writer(warehouse) as con, transaction(con):
        changes = erase_in_warehouse(con, customer_id, salt, replacements=replacements,
                                     personal_paths=catalog.personal_properties)
        erasure_pass = None
        if recorded is None or changes or api_changes:
            erasure_pass = (recorded.passes if recorded else 0) + 1
            con.execute("""
                INSERT INTO billing.erasures (erasure_id, customer_id, pass, erased_at, actor,
                                              reason, pseudonym, salt, changes, recorded_at)
                VALUES ($eid, $id, $pass, $now, $actor, $reason, $pseudonym, $salt, $changes,
                        $recorded_at)""",
                        {"eid": f"era_{secrets.token_hex(8)}", "id": customer_id,
                         "pass": erasure_pass, "now": now, "actor": actor, "reason": reason,
                         "pseudonym": pseudonym, "salt": salt,
                         "changes": json.dumps({"warehouse": changes, "api_store": api_changes}),
                         "recorded_at": datetime.now(UTC)}).fetchall()
        first_at = recorded.first_at if recorded else now
        queue_requests(con, catalog, customer_id, pseudonym=pseudonym, erased_at=first_at,
                       now=now)
    report = ErasureReport(customer_id, pseudonym, erasure_pass, first_at,
                           recorded.first_actor if recorded else actor, changes, api_changes)
    if make_stripe_gateway is not None:
        anonymise_at_stripe(partial(connect_writer, warehouse), make_stripe_gateway,
                            customer_id, pseudonym=pseudonym, salt=salt, now=now)
    with connect_writer(warehouse) as con, transaction(con):
        report.providers = provider_requests(con, customer_id)
    if entry is not None and entry.source_file != API_STORE_SOURCE:
        held = {"name": entry.name, "email": entry.email, "metadata": entry.metadata,
                "tax_id": entry.tax_id}
        if entry.address is not None:
            held["address"] = {"country": entry.address.country, "region": entry.address.region,
                               "postal_code": entry.address.postal_code}
        left = personal_fields_left(held, customer_id, salt)
        if left:
            report.source_warning = (
                f"{entry.source_file}: customers[{customer_id}] still holds {', '.join(left)}: "
                f"the pipeline cannot edit the files you maintain; remove them there (keep the "
                f"id; a name may be left out). Until then every catalog step writes the "
                f"customer pseudonymised and logs a warning.")
    return report
