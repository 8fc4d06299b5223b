"""The integration API's embedded store: tokens, the inbox of accepted calls, the stored answers
that replays get, and the invoices the pipeline publishes for the API to check calls against.

It is a SQLite file in WAL mode (`BILLING_API_STORE`), never the DuckDB warehouse: the API
process and the pipeline use it at the same time. A call is accepted in one transaction that
re-reads the invoice's state, inserts the inbox item and stores the answer: a 2xx is only ever
sent for an item already committed.

Modules: `schema` (tables, migration), `database` (the file, created 0600, and its
connections), `tokens`, `publication` (published invoices, their projected state), `calls`
(accepting a call, idempotent replay), `inbox` (what the pipeline reads a page at a time,
decides, and prunes after the retention period), `catalog_versions` (customers and
subscriptions a CRM puts, every version kept). `ApiStore` is all of them over one file.
"""

from pipelines.api.store.calls import (
    Answer,
    Call,
    CallAcceptance,
    canonical_json,
    error_body,
    sha256_hex,
)
from pipelines.api.store.catalog_versions import (
    CatalogVersionStore,
    EntryVersion,
    PutResult,
)
from pipelines.api.store.inbox import InboxItem, InboxStore, Pruned, Share
from pipelines.api.store.publication import PublicationStore, PublishedInvoice, PublishedLine
from pipelines.api.store.schema import SCHEMA, SCHEMA_VERSION
from pipelines.api.store.tokens import TokenInfo, TokenStore, hash_token


class ApiStore(TokenStore, PublicationStore, CallAcceptance, InboxStore, CatalogVersionStore):
    """The store at `path` (created on first use). Cheap to construct; holds no connection."""


__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Answer",
    "ApiStore",
    "Call",
    "EntryVersion",
    "InboxItem",
    "Pruned",
    "PublishedInvoice",
    "PublishedLine",
    "PutResult",
    "Share",
    "TokenInfo",
    "canonical_json",
    "error_body",
    "hash_token",
    "sha256_hex",
]
