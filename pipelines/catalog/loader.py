"""Load and validate the catalog (contract sections 2 and 11): the YAML files, the bulk tables of
customers and subscriptions they name, and the customers and subscriptions put through the
integration API (read-only from its store), one definition per id.

An invalid catalog fails with every fault found, each naming the file (or table row, or store
version), the entry and what is wrong, e.g.
``catalog/plans.yaml: plans[professional].prices[api_calls]: tiers out of order``. A put through
the API is checked by the same rules (`check_put_entry`), so it is refused with the same words.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from babel.numbers import list_currencies

from pipelines import settings
from pipelines.catalog.accounts import parse_accounts
from pipelines.catalog.bulk_tables import (
    TABLE_KEYS,
    TableFile,
    TableRefused,
    read_table,
    table_rows,
)
from pipelines.catalog.models import (
    AGGREGATIONS,
    AGGREGATIONS_NEEDING_VALUE,
    PERIOD_MONTHS,
    REVERSE_CHARGE_KEY,
    Address,
    BillingProfile,
    Catalog,
    Customer,
    Discount,
    Meter,
    NotificationChannel,
    Plan,
    Price,
    Seller,
    SourceVersion,
    Subscription,
    TaxRate,
    Tier,
)
from pipelines.catalog.parsed_cache import parsed_document
from pipelines.notifications.urls import url_problem

SECTIONS = (
    "meters",
    "plans",
    "customers",
    "subscriptions",
    "billing_profiles",
    "notification_channels",
    "tax_rates",
)
MAPPING_SECTIONS = ("seller", "accounts")
"""Sections that are one mapping, not a list of entries; each may appear in one file only."""
ID_FIELD = {"customers": "id", "subscriptions": "id"}
PERSONAL_PROPERTIES = "personal_properties"
"""The section naming event properties that hold personal data: a list of property names
(dotted for nesting), global to every event (contract section 11, erasure)."""
_PROPERTY_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")

ALLOWED_KEYS: dict[str, set[str]] = {
    "meters": {"key", "event_name", "aggregation", "value_property", "unique_property", "filters",
               "description", "name"},
    "plans": {"key", "name", "currency", "billing_period", "minimum_commitment", "prices",
              "description"},
    "price": {"key", "type", "meter", "description", "amount", "cadence", "unit_price",
              "included_units", "package_size", "package_price", "tier_mode", "tiers", "name"},
    "tier": {"up_to", "unit_price", "flat_fee"},
    "customers": {"id", "name", "email", "billing_profile", "metadata", "address", "tax_id"},
    "address": {"country", "region", "postal_code"},
    "subscriptions": {"id", "customer", "plan", "start_date", "end_date", "billing_anchor",
                      "collection_method", "days_until_due", "discounts"},
    "discount": {"type", "percent", "amount", "periods"},
    "billing_profiles": {"key", "default", "app", "grace_period", "draft_sync_hook",
                         "issuing_sync_hook", "name", "sync_sla", "corrections",
                         "auto_approve_corrections_up_to", "credit_note_refunds"},
    "notification_channels": {"key", "url", "secret_env", "event_types", "customers"},
    "tax_rates": {"key", "country", "region", "percent", "inclusive", "name"},
    "seller": {"country", "tax_id"},
}
_COUNTRY = re.compile(r"^[A-Z]{2}$")

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_KNOWN_CURRENCIES = frozenset(list_currencies())


# How long an invoice may wait for a provider or integration in a syncing state before an
# alert is raised, unless the profile sets `sync_sla`.
DEFAULT_SYNC_SLA = timedelta(hours=24)


class CatalogError(ValueError):
    """The catalog is invalid; `faults` lists every problem, one line each."""

    def __init__(self, faults: list[str]) -> None:
        self.faults = faults
        super().__init__("invalid catalog:\n  " + "\n  ".join(faults))


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration of days/hours/minutes/seconds (PT1H, P2D, P1DT12H)."""
    match = _DURATION.match(str(text).strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration like PT1H or P2D")
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(**parts)


@dataclass(frozen=True)
class Fault:
    """One problem of the catalog: where (file or source, entry), what, and the entry's field
    it is about when there is one (the integration API answers with it)."""

    where: str
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class _Reader:
    """Walks raw YAML entries, collecting faults instead of stopping at the first, and where
    each identifier was defined first (`places`, by section)."""

    faults: list[str] = field(default_factory=list)
    problems: list[Fault] = field(default_factory=list)
    places: dict[str, dict[str, str]] = field(default_factory=dict)

    def fault(self, where: str, message: str, field: str | None = None) -> None:
        self.faults.append(f"{where}: {message}")
        self.problems.append(Fault(where, message, field))

    def check_keys(self, where: str, entry: dict[str, Any], kind: str) -> None:
        unknown = sorted(set(entry) - ALLOWED_KEYS[kind])
        if unknown:
            self.fault(where, f"unknown key(s) {', '.join(unknown)}", unknown[0])

    def text(self, where: str, entry: dict[str, Any], name: str,
             required: bool = True) -> str | None:
        value = entry.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fault(where, f"{name} is required", name)
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.fault(where, f"{name} must be a string, got {value!r}", name)
            return None
        return str(value)

    def decimal(
        self, where: str, entry: dict[str, Any], name: str, required: bool = False,
        minimum: Decimal | None = Decimal("0"), positive: bool = False,
    ) -> Decimal | None:
        value = entry.get(name)
        if value is None:
            if required:
                self.fault(where, f"{name} is required", name)
            return None
        if isinstance(value, float | bool):
            self.fault(where, f"{name} must be a decimal string such as \"{value}\", not a float",
                       name)
            return None
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            self.fault(where, f"{name} {value!r} is not a decimal number", name)
            return None
        if not number.is_finite():
            self.fault(where, f"{name} {value!r} is not a finite number", name)
            return None
        if positive and number <= 0:
            self.fault(where, f"{name} must be greater than 0, got {value}", name)
            return None
        if minimum is not None and number < minimum:
            self.fault(where, f"{name} must be at least {minimum}, got {value}", name)
            return None
        return number

    def choice(self, where: str, entry: dict[str, Any], name: str, options: Iterable[str],
               default: str | None = None) -> str | None:
        value = entry.get(name, default)
        options = tuple(options)
        if not isinstance(value, str) or value not in options:
            self.fault(where, f"{name} must be one of {' | '.join(options)}, got {value!r}", name)
            return None
        return value

    def day(self, where: str, entry: dict[str, Any], name: str, required: bool) -> date | None:
        value = entry.get(name)
        if value is None:
            if required:
                self.fault(where, f"{name} is required", name)
            return None
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fault(where, f"{name} {value!r} is not a date (YYYY-MM-DD)", name)
            return None


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CatalogError([f"{path}: catalog folder or file not found"])
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        raise CatalogError([f"{path}: no .yaml files in the catalog folder"])
    return files


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a large document is built: it would walk every
    object made so far again and again (a 100,000-customer catalog parses 4x slower with it),
    and parsed YAML makes no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_yaml(text: str) -> Any:
    """One YAML document with PyYAML's safe schema, parsed by libyaml (its C loader)."""
    with _collector_paused():
        return yaml.load(text, Loader=yaml.CSafeLoader)


API_STORE_SOURCE = "api store"
"""How the customers and subscriptions put through the integration API are named as a source:
in faults (`api store (version 3): customers[acme]: ...`) and in `billing.*.source_file`."""


class _Entry(NamedTuple):
    """One raw entry of a section: its source (a YAML file, a bulk table, the API store), the
    mapping, and where faults place it when more precisely than the source (a table's row, a
    store version)."""

    file: str
    item: dict[str, Any]
    place: str | None = None


@dataclass(frozen=True)
class _Memo:
    """Something built from the catalog's sources, and the identity of those sources: the
    YAML files' and tables' sha256, the API store's revision."""

    yaml_identity: tuple[tuple[str, str], ...]
    declared: tuple[tuple[str, str, Any], ...]      # (file, *_table key, value) of the YAML
    identity: tuple[Any, ...]
    value: Any


# The last catalog built in this process, by the identity of its sources: the steps of a run
# (and the runs of a long-lived process) share it while no file and no API store entry changes.
_last_loaded: _Memo | None = None
# The same for the references the integration API checks a put against (the files alone).
_last_references: _Memo | None = None


def load_catalog(path: str | Path, *, api_store: str | None = None) -> Catalog:
    """Read every YAML file of the catalog folder, the bulk tables they name and the customers
    and subscriptions put through the integration API (its store at `api_store`, default
    BILLING_API_STORE: read-only, never blocking it), merge the sections, validate, and build.

    Sources whose identity is the same as at the last load in this process give the catalog
    built then (catalogs are immutable), so the steps of one run validate it once.
    """
    global _last_loaded
    store_path = api_store or settings.api_store_path()
    folder, files, yaml_identity = _read_yaml(Path(path))
    memo = _last_loaded
    if memo is not None and _current_identity(memo, folder, yaml_identity,
                                              store_path) == memo.identity:
        return memo.value
    reader = _Reader()
    with _collector_paused():
        entries, declared, identity, versions = _gather(reader, folder, files, yaml_identity,
                                                        store_path)
        catalog = _build(reader, entries)
    if reader.faults:
        raise CatalogError(reader.faults)
    for (section, ident), version in versions.items():
        table: dict[str, Any] = getattr(catalog, section)
        if ident in table and table[ident].source_file == API_STORE_SOURCE:
            table[ident] = replace(table[ident], source_version=version)
    _last_loaded = _Memo(yaml_identity, declared, identity, catalog)
    return catalog


@dataclass(frozen=True)
class CatalogReferences:
    """What a customer or subscription put through the integration API is checked against:
    the catalog built from its files alone (YAML and bulk tables; built as far as it is
    valid), where each customer and subscription id of the files is defined, and the files'
    subscriptions by customer (for the overlapping meters rule)."""

    catalog: Catalog
    places: dict[str, dict[str, str]]
    subscriptions_by_customer: dict[str, list[Subscription]]


def catalog_references(path: str | Path) -> CatalogReferences:
    """The catalog's files as they are now, as references for a put (cached while no file
    changes). A CatalogError only when there is no catalog to read at all."""
    global _last_references
    folder, files, yaml_identity = _read_yaml(Path(path))
    memo = _last_references
    if memo is not None and _current_identity(memo, folder, yaml_identity, None) == memo.identity:
        return memo.value
    reader = _Reader()
    with _collector_paused():
        entries, declared, identity, _ = _gather(reader, folder, files, yaml_identity, None)
        catalog = _build(reader, entries, check_overlaps=False)
    by_customer: dict[str, list[Subscription]] = {}
    for subscription in catalog.subscriptions.values():
        by_customer.setdefault(subscription.customer, []).append(subscription)
    references = CatalogReferences(catalog, reader.places, by_customer)
    _last_references = _Memo(yaml_identity, declared, identity, references)
    return references


def check_put_entry(section: str, entry_id: str, fields: Any, references: CatalogReferences, *,
                    customer_known: Callable[[str], bool] = lambda _: False,
                    siblings: Iterable[dict[str, Any]] = ()) -> tuple[Any, list[Fault]]:
    """A customer or subscription put through the integration API, validated by the rules the
    YAML's entries are (the same faults, each with its field): (the entry or None, faults).
    Its references are checked against the catalog's files now (a subscription's plan, a
    customer's billing profile) and `customer_known` (customers the API holds); a
    subscription's overlapping meters against `siblings` (the fields of the customer's other
    subscriptions the API holds) and the files' subscriptions of the customer."""
    reader = _Reader()
    where = f"{API_STORE_SOURCE}: {section}[{entry_id}]"
    if not isinstance(fields, dict):
        reader.fault(where, f"the body must be an object of the {section[:-1]}'s fields")
        return None, reader.problems
    given = fields.get("id")
    if given is not None and str(given) != entry_id:
        reader.fault(where, f"id {given!r} differs from the id in the path {entry_id!r}", "id")
        return None, reader.problems
    item = {**fields, "id": entry_id}
    reader.check_keys(where, item, section)
    catalog = references.catalog
    built: Customer | Subscription | None
    if section == "customers":
        built = _customer(reader, where, API_STORE_SOURCE, item, catalog.billing_profiles)
    else:
        known = _KnownCustomers(catalog.customers, customer_known)
        built = _subscription(reader, where, API_STORE_SOURCE, item, catalog.plans, known)
        if built is not None and not reader.faults:
            held = [_subscription(_Reader(), where, API_STORE_SOURCE, fields, catalog.plans, known)
                    for fields in siblings]
            others = [s for s in (*references.subscriptions_by_customer.get(built.customer, ()),
                                  *held) if s is not None and s.id != entry_id]
            _check_overlapping_meters(reader, {s.id: s for s in (*others, built)}, catalog.plans)
    return (None if reader.faults else built), reader.problems


def field_of(fault: Fault, entry_where: str) -> str | None:
    """The JSON path of the field a fault of an entry is about (`discounts[0].percent`), from
    where the fault is placed under the entry and the field it names."""
    below = fault.where[len(entry_where):].lstrip(".") if fault.where.startswith(
        entry_where) else ""
    parts = [part for part in (below, fault.field) if part]
    return ".".join(parts) or None


class _KnownCustomers:
    """Customers a put subscription may name: the files' and those `known` says the API has."""

    def __init__(self, files: Mapping[str, Customer], known: Callable[[str], bool]) -> None:
        self.files = files
        self.known = known

    def __contains__(self, customer: object) -> bool:
        return customer in self.files or (isinstance(customer, str) and self.known(customer))


def _read_yaml(path: Path) -> tuple[Path, list[tuple[Path, bytes]], tuple[tuple[str, str], ...]]:
    """The catalog folder, its YAML files' bytes and their identity (path, sha256)."""
    files = [(file, file.read_bytes()) for file in _yaml_files(path)]
    identity = tuple((str(file), hashlib.sha256(content).hexdigest()) for file, content in files)
    return (path if path.is_dir() else path.parent), files, identity


def _table_identity(tables: list[tuple[str, TableFile]]) -> tuple[tuple[str, str], ...]:
    return tuple((table.label, table.digest) for _, table in tables)


def _current_identity(memo: _Memo | None, folder: Path, yaml_identity: tuple[tuple[str, str], ...],
                      store_path: str | None) -> tuple[Any, ...] | None:
    """The identity of the sources now, when the YAML files are those `memo` was built from
    (None otherwise: they must be parsed again)."""
    if memo is None or memo.yaml_identity != yaml_identity:
        return None
    tables = _table_files(_Reader(), folder, memo.declared)
    revision = read_revision(store_path) if store_path else 0
    return (yaml_identity, _table_identity(tables), store_path, revision)


def _gather(reader: _Reader, folder: Path, files: list[tuple[Path, bytes]],
            yaml_identity: tuple[tuple[str, str], ...], store_path: str | None,
            ) -> tuple[dict[str, list[_Entry]], tuple[tuple[str, str, Any], ...], tuple[Any, ...],
                       dict[tuple[str, str], SourceVersion]]:
    """Every raw entry of the sources (YAML files, the tables they name, the API store when
    `store_path` is given), the tables declared, the sources' identity and the store entries'
    versions; faults of whole files and rows go to `reader`."""
    entries: dict[str, list[_Entry]] = {
        s: [] for s in (*SECTIONS, *MAPPING_SECTIONS, PERSONAL_PROPERTIES)}
    declared = _parse_yaml_files(reader, files, yaml_identity, entries)
    tables = _table_files(reader, folder, declared)
    for section, table in tables:
        rows, faults = table_rows(table, ALLOWED_KEYS[section])
        for message in faults:
            reader.fault(table.label, message)
        entries[section].extend(_Entry(table.label, item, f"{table.label}: row {number}")
                                for number, item in rows)
    versions: dict[tuple[str, str], SourceVersion] = {}
    revision = 0
    if store_path:
        from pipelines.api.store.catalog_versions import read_current_entries

        store = read_current_entries(store_path)
        revision = store.revision
        for entry in store.entries:
            entries[entry.section].append(_Entry(
                API_STORE_SOURCE, {**entry.fields, "id": entry.entry_id},
                f"{API_STORE_SOURCE} (version {entry.version})"))
            versions[(entry.section, entry.entry_id)] = SourceVersion(
                entry.version, entry.changed_at, entry.token_name)
    identity = (yaml_identity, _table_identity(tables), store_path, revision)
    return entries, declared, identity, versions


def read_revision(store_path: str) -> int:
    """The API store's catalog revision (changes with every put that changes something)."""
    from pipelines.api.store.catalog_versions import read_revision as store_revision

    return store_revision(store_path)


def _parse_yaml_files(reader: _Reader, files: list[tuple[Path, bytes]],
                      identity: tuple[tuple[str, str], ...],
                      entries: dict[str, list[_Entry]]) -> tuple[tuple[str, str, Any], ...]:
    """Each file's sections into `entries`; returns the bulk tables the files declare."""
    declared: list[tuple[str, str, Any]] = []
    cache = settings.catalog_cache_path()
    for (file, content), (_, digest) in zip(files, identity, strict=True):
        try:
            document = parsed_document(content, digest, cache, parse_yaml) or {}
        except UnicodeDecodeError as exc:
            reader.fault(str(file), f"not UTF-8 text: {exc}")
            continue
        except yaml.YAMLError as exc:
            reader.fault(str(file), f"not valid YAML: {exc}")
            continue
        if not isinstance(document, dict):
            reader.fault(str(file), "the top level must be a mapping of sections")
            continue
        for section, items in document.items():
            if section in MAPPING_SECTIONS:
                if not isinstance(items, dict):
                    reader.fault(f"{file}: {section}", "must be a mapping")
                elif entries[section]:
                    reader.fault(f"{file}: {section}",
                                 f"defined again (first in {entries[section][0][0]})")
                else:
                    entries[section].append(_Entry(str(file), items))
                continue
            if section in TABLE_KEYS:
                earlier = [f for f, key, _ in declared if key == section]
                if earlier:
                    reader.fault(f"{file}: {section}", f"a second {section} (the first is in "
                                 f"{earlier[0]}); one table per section")
                    continue
                declared.append((str(file), section, items))
                continue
            if section == PERSONAL_PROPERTIES:
                if not isinstance(items, list):
                    reader.fault(f"{file}: {section}", "must be a list of property names")
                    continue
                entries[section].extend(
                    _Entry(str(file), {"path": item}, f"{file}: {section}[{index}]")
                    for index, item in enumerate(items))
                continue
            if section not in SECTIONS:
                known = ", ".join((*SECTIONS, *MAPPING_SECTIONS, PERSONAL_PROPERTIES,
                                   *TABLE_KEYS))
                reader.fault(str(file), f"unknown section {section!r} (known: {known})")
                continue
            if not isinstance(items, list):
                reader.fault(f"{file}: {section}", "must be a list of entries")
                continue
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    reader.fault(f"{file}: {section}[{index}]", "each entry must be a mapping")
                    continue
                entries[section].append(_Entry(str(file), item))
    return tuple(declared)


def _table_files(reader: _Reader, folder: Path, declared: tuple[tuple[str, str, Any], ...]
                 ) -> list[tuple[str, TableFile]]:
    """The declared bulk tables read (section, table); a refused one is a fault naming the
    declaring file and why."""
    tables: list[tuple[str, TableFile]] = []
    for file, key, value in declared:
        try:
            tables.append((TABLE_KEYS[key], read_table(folder, value)))
        except TableRefused as exc:
            reader.fault(f"{file}: {key}", str(exc))
        except OSError as exc:
            reader.fault(f"{file}: {key}", f"{value!r} cannot be read: {exc}")
    return tables


def _entry_name(section: str, index: int, item: dict[str, Any]) -> str:
    ident = item.get(ID_FIELD.get(section, "key"))
    return f"{section}[{ident if ident not in (None, '') else index}]"


def _keyed(reader: _Reader, section: str, entries: list[_Entry],
           build: Callable[[str, str, dict[str, Any]], Any]) -> dict[str, Any]:
    """Build each entry of a section, checking its identifier is present and defined once:
    a second definition is a fault naming both places."""
    result: dict[str, Any] = {}
    places = reader.places.setdefault(section, {})
    id_field = ID_FIELD.get(section, "key")
    for index, (file, item, place) in enumerate(entries):
        where = f"{place or file}: {_entry_name(section, index, item)}"
        reader.check_keys(where, item, section)
        ident = reader.text(where, item, id_field)
        built = build(where, file, item)
        if ident is None or built is None:
            continue
        if ident in result:
            reader.fault(where, f"duplicate {id_field} {ident!r} (also defined at "
                         f"{places[ident]})", id_field)
            continue
        result[ident] = built
        places[ident] = where
    return result


def _build(reader: _Reader, entries: dict[str, list[_Entry]], *,
           check_overlaps: bool = True) -> Catalog:
    meters = _keyed(reader, "meters", entries["meters"], lambda w, f, i: _meter(reader, w, f, i))
    profiles = _keyed(reader, "billing_profiles", entries["billing_profiles"],
                      lambda w, f, i: _profile(reader, w, f, i))
    plans = _keyed(reader, "plans", entries["plans"],
                   lambda w, f, i: _plan(reader, w, f, i, meters))
    customers = _keyed(reader, "customers", entries["customers"],
                       lambda w, f, i: _customer(reader, w, f, i, profiles))
    subscriptions = _keyed(reader, "subscriptions", entries["subscriptions"],
                           lambda w, f, i: _subscription(reader, w, f, i, plans, customers))
    channels = _keyed(reader, "notification_channels", entries["notification_channels"],
                      lambda w, f, i: _channel(reader, w, f, i, customers))
    tax_rates = _keyed(reader, "tax_rates", entries["tax_rates"],
                       lambda w, f, i: _tax_rate(reader, w, f, i))
    _check_tax_jurisdictions(reader, tax_rates)
    seller = None
    for file, item, _ in entries["seller"]:
        seller = _seller(reader, f"{file}: seller", file, item)
    if tax_rates and not entries["seller"]:
        first = next(iter(tax_rates.values()))
        reader.fault(f"{first.source_file}: tax_rates",
                     "a seller (seller: {country: ...}) is required when tax_rates are configured")
    defaults = [p for p in profiles.values() if p.default]
    if len(defaults) > 1:
        reader.fault(defaults[1].source_file,
                     "billing_profiles: more than one default "
                     f"({', '.join(p.key for p in defaults)})")
    if check_overlaps:
        _check_overlapping_meters(reader, subscriptions, plans)
    personal = _personal_properties(reader, entries.get(PERSONAL_PROPERTIES, []), meters)
    return Catalog(meters=meters, plans=plans, customers=customers, subscriptions=subscriptions,
                   billing_profiles=profiles, notification_channels=channels,
                   tax_rates=tax_rates, seller=seller,
                   accounts=parse_accounts(reader, [(e.file, e.item) for e in entries["accounts"]],
                                           plans),
                   personal_properties=personal)


def _personal_properties(reader: _Reader, entries: list[_Entry],
                         meters: Mapping[str, Meter]) -> tuple[str, ...]:
    """The personal event properties, each a property name (dotted for nesting) named once.
    A property a meter sums or filters on cannot be one: pseudonymising its values would
    change what the meter bills (a unique_count's property can: values stay distinct)."""
    paths: dict[str, str] = {}
    for file, item, place in entries:
        where = place or file
        path = item.get("path")
        if not isinstance(path, str) or not _PROPERTY_PATH.match(path):
            reader.fault(where, f"a personal property must be a property name (dotted for "
                                f"nesting), got {path!r}")
            continue
        if path in paths:
            reader.fault(where, f"duplicate personal property {path!r} (also at {paths[path]})")
            continue
        billed = sorted(m.key for m in meters.values()
                        if m.value_property == path or path in m.filters)
        if billed:
            reader.fault(where, f"personal property {path!r} is what meter(s) "
                                f"{', '.join(billed)} sum or filter on: its values cannot be "
                                "pseudonymised without changing what is billed")
            continue
        paths[path] = where
    return tuple(paths)


def _meter(reader: _Reader, where: str, file: str, item: dict[str, Any]) -> Meter | None:
    key = reader.text(where, item, "key")
    event_name = reader.text(where, item, "event_name")
    aggregation = reader.choice(where, item, "aggregation", AGGREGATIONS)
    value_property = reader.text(where, item, "value_property", required=False)
    unique_property = reader.text(where, item, "unique_property", required=False)
    if aggregation in AGGREGATIONS_NEEDING_VALUE and not value_property:
        reader.fault(where, f"a {aggregation} meter needs value_property")
    if aggregation == "unique_count" and not unique_property:
        reader.fault(where, "a unique_count meter needs unique_property")
    filters = item.get("filters") or {}
    if not isinstance(filters, dict) or any(
        isinstance(v, dict | list) for v in filters.values()
    ):
        reader.fault(where, "filters must map property names to single values")
        filters = {}
    if not (key and event_name and aggregation):
        return None
    return Meter(key=key, event_name=event_name, aggregation=aggregation,  # type: ignore[arg-type]
                 value_property=value_property, unique_property=unique_property,
                 filters={str(k): v for k, v in filters.items()}, source_file=file)


def _tiers(reader: _Reader, where: str, raw: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        reader.fault(where, "a tiered price needs a non-empty list of tiers")
        return ()
    tiers: list[Tier] = []
    previous: Decimal | None = None
    for index, item in enumerate(raw):
        tier_where = f"{where}.tiers[{index}]"
        if not isinstance(item, dict):
            reader.fault(tier_where, "each tier must be a mapping")
            return ()
        reader.check_keys(tier_where, item, "tier")
        up_to = reader.decimal(tier_where, item, "up_to", positive=True)
        unit_price = reader.decimal(tier_where, item, "unit_price", required=True)
        flat_fee = reader.decimal(tier_where, item, "flat_fee") or Decimal("0")
        last = index == len(raw) - 1
        if up_to is None and item.get("up_to") is None and not last:
            reader.fault(tier_where, "only the last tier may have up_to: null")
        if last and item.get("up_to") is not None:
            reader.fault(tier_where, "the last tier must be open (up_to: null)")
        if up_to is not None and previous is not None and up_to <= previous:
            reader.fault(tier_where, f"tiers out of order: up_to {up_to} is not above {previous}")
        if unit_price is None:
            return ()
        previous = up_to if up_to is not None else previous
        tiers.append(Tier(up_to=up_to, unit_price=unit_price, flat_fee=flat_fee))
    return tuple(tiers)


def _price(reader: _Reader, where: str, item: dict[str, Any], meters: dict[str, Meter]
           ) -> Price | None:
    reader.check_keys(where, item, "price")
    key = reader.text(where, item, "key")
    price_type = reader.choice(where, item, "type", ("flat", "per_unit", "package", "tiered"))
    if not key or not price_type:
        return None
    meter = reader.text(where, item, "meter", required=price_type != "flat")
    if price_type == "flat" and meter:
        reader.fault(where, "a flat price takes no meter")
    if meter and meter not in meters:
        reader.fault(where, f"unknown meter {meter!r}")
    fields: dict[str, Any] = {"key": key, "type": price_type, "meter": meter,
                              "description": item.get("description") or item.get("name")}
    if price_type == "flat":
        fields["amount"] = reader.decimal(where, item, "amount", required=True)
        fields["cadence"] = reader.choice(where, item, "cadence", ("in_advance", "in_arrears"),
                                          default="in_advance")
    else:
        if "cadence" in item and item["cadence"] != "in_arrears":
            reader.fault(where, "usage prices are billed in_arrears")
        fields["included_units"] = reader.decimal(where, item, "included_units") or Decimal("0")
    if price_type == "per_unit":
        fields["unit_price"] = reader.decimal(where, item, "unit_price", required=True)
    elif price_type == "package":
        fields["package_size"] = reader.decimal(where, item, "package_size", required=True,
                                                positive=True)
        fields["package_price"] = reader.decimal(where, item, "package_price", required=True)
    elif price_type == "tiered":
        fields["tier_mode"] = reader.choice(where, item, "tier_mode", ("graduated", "volume"))
        fields["tiers"] = _tiers(reader, where, item.get("tiers"))
    required = {"flat": ("amount",), "per_unit": ("unit_price",),
                "package": ("package_size", "package_price"), "tiered": ("tier_mode",)}
    if any(fields.get(name) is None for name in required[price_type]):
        return None
    return Price(**fields)


def _plan(reader: _Reader, where: str, file: str, item: dict[str, Any],
          meters: dict[str, Meter]) -> Plan | None:
    key = reader.text(where, item, "key")
    name = reader.text(where, item, "name", required=False) or key
    currency = reader.text(where, item, "currency")
    if currency and currency not in _KNOWN_CURRENCIES:
        reader.fault(where, f"currency {currency!r} is not an ISO 4217 code")
        currency = None
    period = reader.choice(where, item, "billing_period", tuple(PERIOD_MONTHS), default="monthly")
    minimum = reader.decimal(where, item, "minimum_commitment")
    raw_prices = item.get("prices")
    if not isinstance(raw_prices, list) or not raw_prices:
        reader.fault(where, "a plan needs a non-empty list of prices")
        return None
    prices: list[Price] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_prices):
        price_where = f"{where}.prices[{raw.get('key', index) if isinstance(raw, dict) else index}]"
        if not isinstance(raw, dict):
            reader.fault(price_where, "each price must be a mapping")
            continue
        price = _price(reader, price_where, raw, meters)
        if price is None:
            continue
        if price.key in seen:
            reader.fault(price_where, f"duplicate price key {price.key!r}")
        seen.add(price.key)
        prices.append(price)
    if not (key and currency and period) or len(prices) != len(raw_prices):
        return None
    return Plan(key=key, name=name or key, currency=currency, billing_period=period,  # type: ignore[arg-type]
                prices=tuple(prices), minimum_commitment=minimum, source_file=file)


def _customer(reader: _Reader, where: str, file: str, item: dict[str, Any],
              profiles: Mapping[str, BillingProfile]) -> Customer | None:
    ident = reader.text(where, item, "id")
    name = reader.text(where, item, "name", required=False) or ident
    email = reader.text(where, item, "email", required=False)
    profile = reader.text(where, item, "billing_profile", required=False)
    if profile and profile not in profiles:
        reader.fault(where, f"unknown billing_profile {profile!r}", "billing_profile")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        reader.fault(where, "metadata must be a mapping", "metadata")
        metadata = {}
    address = _address(reader, f"{where}.address", item.get("address"))
    tax_id = reader.text(where, item, "tax_id", required=False)
    if not ident:
        return None
    return Customer(id=ident, name=name or ident, email=email, billing_profile=profile,
                    metadata={str(k): str(v) for k, v in metadata.items()}, source_file=file,
                    address=address, tax_id=tax_id)


def _country(reader: _Reader, where: str, entry: dict[str, Any]) -> str | None:
    """An ISO 3166-1 alpha-2 country code, upper case (``DE``, ``US``)."""
    country = reader.text(where, entry, "country")
    if country is not None and not _COUNTRY.match(country):
        reader.fault(where, f"country {country!r} is not an ISO 3166-1 alpha-2 code such as DE")
        return None
    return country


def _region(reader: _Reader, where: str, entry: dict[str, Any]) -> str | None:
    """A region of a country (an ISO 3166-2 subdivision code without the country: ``CA``),
    upper case so that a customer's ``ca`` matches a rate's ``CA``."""
    region = reader.text(where, entry, "region", required=False)
    return region.strip().upper() if region else None


def _address(reader: _Reader, where: str, raw: Any) -> Address | None:
    """A customer's address; None when the customer has none (then no tax applies)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        reader.fault(where, "address must be a mapping (country, region, postal_code)")
        return None
    reader.check_keys(where, raw, "address")
    country = _country(reader, where, raw)
    region = _region(reader, where, raw)
    postal_code = reader.text(where, raw, "postal_code", required=False)
    if country is None:
        return None
    return Address(country=country, region=region, postal_code=postal_code)


def _tax_rate(reader: _Reader, where: str, file: str, item: dict[str, Any]) -> TaxRate | None:
    key = reader.text(where, item, "key")
    if key == REVERSE_CHARGE_KEY:
        reader.fault(where, f"key {key!r} is reserved for the EU reverse charge")
    country = _country(reader, where, item)
    region = _region(reader, where, item)
    percent = reader.decimal(where, item, "percent", required=True)
    if percent is not None and percent >= 100:
        reader.fault(where, f"percent must be below 100, got {percent}")
        percent = None
    inclusive = item.get("inclusive", False)
    if not isinstance(inclusive, bool):
        reader.fault(where, f"inclusive must be true or false, got {inclusive!r}")
        inclusive = None
    name = reader.text(where, item, "name", required=False)
    if not (key and country) or percent is None or inclusive is None:
        return None
    return TaxRate(key=key, country=country, region=region, percent=percent,
                   inclusive=inclusive, name=name, source_file=file)


def _check_tax_jurisdictions(reader: _Reader, tax_rates: dict[str, TaxRate]) -> None:
    """One rate per jurisdiction (country, region): which rate applies is never ambiguous."""
    seen: dict[tuple[str, str | None], str] = {}
    for rate in tax_rates.values():
        jurisdiction = (rate.country, rate.region)
        if jurisdiction in seen:
            place = rate.country + (f"-{rate.region}" if rate.region else "")
            reader.fault(f"{rate.source_file}: tax_rates[{rate.key}]",
                         f"{place} already has tax rate {seen[jurisdiction]!r}")
        else:
            seen[jurisdiction] = rate.key


def _seller(reader: _Reader, where: str, file: str, item: dict[str, Any]) -> Seller | None:
    reader.check_keys(where, item, "seller")
    country = _country(reader, where, item)
    tax_id = reader.text(where, item, "tax_id", required=False)
    if country is None:
        return None
    return Seller(country=country, tax_id=tax_id, source_file=file)


def _discounts(reader: _Reader, where: str, raw: Any) -> tuple[Discount, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.fault(where, "discounts must be a list", "discounts")
        return ()
    result: list[Discount] = []
    for index, item in enumerate(raw):
        d_where = f"{where}.discounts[{index}]"
        if not isinstance(item, dict):
            reader.fault(d_where, "each discount must be a mapping")
            continue
        reader.check_keys(d_where, item, "discount")
        kind = reader.choice(d_where, item, "type", ("percentage", "fixed"))
        periods = item.get("periods")
        if periods is not None and (not isinstance(periods, int) or isinstance(periods, bool)
                                    or periods < 1):
            reader.fault(d_where,
                         f"periods must be a positive whole number or null, got {periods!r}",
                         "periods")
            continue
        if kind == "percentage":
            percent = reader.decimal(d_where, item, "percent", required=True)
            if percent is not None and percent > 100:
                reader.fault(d_where, f"percent must be at most 100, got {percent}", "percent")
                continue
            if percent is not None:
                result.append(Discount(type="percentage", percent=percent, periods=periods))
        elif kind == "fixed":
            amount = reader.decimal(d_where, item, "amount", required=True)
            if amount is not None:
                result.append(Discount(type="fixed", amount=amount, periods=periods))
    return tuple(result)


def _subscription(reader: _Reader, where: str, file: str, item: dict[str, Any],
                  plans: Mapping[str, Plan], customers: Container[str]) -> Subscription | None:
    ident = reader.text(where, item, "id")
    customer = reader.text(where, item, "customer")
    plan = reader.text(where, item, "plan")
    if customer and customer not in customers:
        reader.fault(where, f"unknown customer {customer!r}", "customer")
    if plan and plan not in plans:
        reader.fault(where, f"unknown plan {plan!r}", "plan")
    start = reader.day(where, item, "start_date", required=True)
    end = reader.day(where, item, "end_date", required=False)
    if start and end and end <= start:
        reader.fault(where, f"end_date {end} must be after start_date {start}", "end_date")
    anchor = item.get("billing_anchor")
    if anchor is not None and (not isinstance(anchor, int) or isinstance(anchor, bool)
                               or not 1 <= anchor <= 31):
        reader.fault(where, f"billing_anchor must be a day of month 1-31, got {anchor!r}",
                     "billing_anchor")
        anchor = None
    method = reader.choice(where, item, "collection_method",
                           ("charge_automatically", "send_invoice"), default="charge_automatically")
    days_due = item.get("days_until_due")
    if method == "send_invoice":
        days_due = 30 if days_due is None else days_due
        if not isinstance(days_due, int) or isinstance(days_due, bool) or days_due < 0:
            reader.fault(where, f"days_until_due must be a whole number of days, got {days_due!r}",
                         "days_until_due")
            days_due = None
    elif days_due is not None:
        reader.fault(where, "days_until_due applies to send_invoice subscriptions only",
                     "days_until_due")
        days_due = None
    discounts = _discounts(reader, where, item.get("discounts"))
    if not (ident and customer and plan and start and method):
        return None
    return Subscription(id=ident, customer=customer, plan=plan, start_date=start, end_date=end,
                        billing_anchor=anchor, collection_method=method,  # type: ignore[arg-type]
                        days_until_due=days_due, discounts=discounts, source_file=file)


def _profile(reader: _Reader, where: str, file: str, item: dict[str, Any]) -> BillingProfile | None:
    key = reader.text(where, item, "key")
    app = reader.choice(where, item, "app", ("stripe", "custom_invoicing", "none"))
    grace = timedelta(0)
    if item.get("grace_period") is not None:
        try:
            grace = parse_duration(str(item["grace_period"]))
        except ValueError as exc:
            reader.fault(where, f"grace_period: {exc}")
    sync_sla = DEFAULT_SYNC_SLA
    if item.get("sync_sla") is not None:
        try:
            sync_sla = parse_duration(str(item["sync_sla"]))
        except ValueError as exc:
            reader.fault(where, f"sync_sla: {exc}")
    corrections = reader.choice(where, item, "corrections", ("documents", "next_invoice"),
                                default="documents")
    auto_approve = reader.decimal(where, item, "auto_approve_corrections_up_to")
    hooks = {}
    for hook in ("draft_sync_hook", "issuing_sync_hook", "default", "credit_note_refunds"):
        value = item.get(hook, False)
        if not isinstance(value, bool):
            reader.fault(where, f"{hook} must be true or false, got {value!r}")
            value = False
        hooks[hook] = value
    if app != "custom_invoicing" and (hooks["draft_sync_hook"] or hooks["issuing_sync_hook"]):
        reader.fault(where, "sync hooks apply to custom_invoicing profiles only")
    if not (key and app):
        return None
    return BillingProfile(key=key, app=app, grace_period=grace, sync_sla=sync_sla,  # type: ignore[arg-type]
                          corrections=corrections or "documents",  # type: ignore[arg-type]
                          auto_approve_corrections_up_to=auto_approve or Decimal("0"),
                          source_file=file, **hooks)


def _channel(reader: _Reader, where: str, file: str, item: dict[str, Any],
             customers: Container[str]) -> NotificationChannel | None:
    key = reader.text(where, item, "key")
    url = reader.text(where, item, "url")
    problem = url_problem(url) if url else None
    if problem:
        reader.fault(where, problem)
    secret_env = reader.text(where, item, "secret_env", required=False)
    if "secret" in item:
        reader.fault(where, "secrets come from the environment: name the variable in secret_env")
    event_types = item.get("event_types") or []
    if not isinstance(event_types, list) or not all(isinstance(e, str) for e in event_types):
        reader.fault(where, "event_types must be a list of event type names")
        event_types = []
    scoped = item.get("customers") or []
    for customer in scoped:
        if customer not in customers:
            reader.fault(where, f"unknown customer {customer!r}")
    if not (key and url):
        return None
    return NotificationChannel(key=key, url=url, secret_env=secret_env,
                               event_types=tuple(event_types), customers=tuple(scoped),
                               source_file=file)


def _check_overlapping_meters(reader: _Reader, subscriptions: dict[str, Subscription],
                              plans: dict[str, Plan]) -> None:
    """Two subscriptions of one customer active at once must not bill the same meter."""
    by_customer: dict[str, list[Subscription]] = {}
    for sub in subscriptions.values():
        by_customer.setdefault(sub.customer, []).append(sub)
    for subs in by_customer.values():
        for i, first in enumerate(subs):
            for second in subs[i + 1:]:
                if first.plan not in plans or second.plan not in plans:
                    continue
                overlap = (first.end_date is None or second.start_date < first.end_date) and (
                    second.end_date is None or first.start_date < second.end_date)
                shared = plans[first.plan].meter_keys & plans[second.plan].meter_keys
                if overlap and shared:
                    reader.fault(
                        f"{second.source_file}: subscriptions[{second.id}]",
                        f"overlaps subscription {first.id!r} of customer {first.customer!r} "
                        f"and both bill meter(s) {', '.join(sorted(shared))}", "plan",
                    )
