"""Loading the catalog: once per content, shared by a run's steps, and fast at 100,000
customers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.catalog import CatalogError, load_catalog
from tests.support.environment import EXAMPLE_CATALOG


def test_unchanged_files_give_the_catalog_already_built(tmp_path: Path) -> None:
    folder = shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")
    first = load_catalog(folder)
    assert load_catalog(folder) is first
    customers = folder / "customers.yaml"
    text = customers.read_text(encoding="utf-8")
    assert "name: Acme Corporation," in text
    customers.write_text(text.replace("name: Acme Corporation,", "name: Acme Corp Ltd,"),
                         encoding="utf-8")
    changed = load_catalog(folder)
    assert changed is not first
    assert changed.customers["acme_corp_001"].name == "Acme Corp Ltd"


def test_a_broken_file_is_still_named_after_a_good_load(tmp_path: Path) -> None:
    folder = shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")
    load_catalog(folder)
    (folder / "plans.yaml").write_text("plans: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"plans\.yaml: not valid YAML"):
        load_catalog(folder)


def test_a_parsed_file_is_read_back_from_the_cache_exactly(tmp_path: Path) -> None:
    from datetime import date

    from pipelines.catalog.parsed_cache import parsed_document

    parses: list[str] = []

    def parse(text: str) -> object:
        parses.append(text)
        return {"start_date": date(2026, 1, 31), "price": 0.1, "items": [1, None, True, "x"]}

    first = parsed_document(b"doc", "abc", tmp_path, parse)
    again = parsed_document(b"doc", "abc", tmp_path, parse)
    assert again == first and len(parses) == 1
    assert isinstance(again["start_date"], date)
    (tmp_path / "abc.json").write_text("{not json", encoding="utf-8")   # a damaged entry
    assert parsed_document(b"doc", "abc", tmp_path, parse) == first and len(parses) == 2


def test_a_document_json_cannot_hold_exactly_is_not_cached(tmp_path: Path) -> None:
    from pipelines.catalog.parsed_cache import parsed_document

    def parse(text: str) -> object:
        return {"filters": {1: "one"}}   # an integer mapping key would come back as "1"

    assert parsed_document(b"doc", "def", tmp_path, parse) == {"filters": {1: "one"}}
    assert not (tmp_path / "def.json").exists()
