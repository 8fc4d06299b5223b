"""The erasure's pure rules (contract section 11): one pseudonym per customer, distinct values
kept distinct, JSON-escaped and differently cased copies found, and the catalog's
`personal_properties:` validated like the rest of the catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.catalog import CatalogError, load_catalog
from pipelines.erasure.pseudonyms import (
    customer_pseudonym,
    erased_customer_fields,
    personal_fields_left,
    pseudonymise_properties,
    replace_terms,
    sweep_terms,
    text_forms,
    value_pseudonym,
)
from tests.support.environment import EXAMPLE_CATALOG


def test_the_pseudonym_is_deterministic_per_customer_and_salt_and_says_nothing_personal():
    assert customer_pseudonym("acme", "s1") == customer_pseudonym("acme", "s1")
    assert customer_pseudonym("acme", "s1") != customer_pseudonym("acme", "s2")
    assert customer_pseudonym("acme", "s1") != customer_pseudonym("globex", "s1")
    assert customer_pseudonym("acme", "s1").startswith("erased-")
    assert "acme" not in customer_pseudonym("acme", "s1")


def test_personal_values_stay_distinct_so_unique_counts_hold_and_erasing_twice_is_a_no_op():
    a, b = value_pseudonym("acme", "s", "jane@x.example"), value_pseudonym("acme", "s", "joe")
    assert a != b and value_pseudonym("acme", "s", "jane@x.example") == a
    assert value_pseudonym("acme", "s", a) == a
    props = {"user_id": "jane@x.example", "user": {"full_name": "Jane"}, "tokens": 12}
    erased, replaced = pseudonymise_properties(props, ["user_id", "user.full_name", "absent.x"],
                                               "acme", "s")
    assert replaced == 2 and erased["tokens"] == 12 and erased["user_id"] == a
    assert pseudonymise_properties(erased, ["user_id", "user.full_name"], "acme", "s") == (
        erased, 0)
    assert props["user_id"] == "jane@x.example"          # the input is not changed


def test_customer_fields_are_erased_and_what_is_left_is_named():
    fields = {"id": "acme", "name": "Acme", "email": "a@acme.example", "billing_profile": "p",
              "metadata": {"vat": "DE1"}}
    erased = erased_customer_fields(fields, "acme", "s")
    pseudonym = customer_pseudonym("acme", "s")
    assert erased == {"id": "acme", "name": pseudonym, "email": f"{pseudonym}@erased.invalid",
                      "billing_profile": "p",
                      "metadata": {"vat": value_pseudonym("acme", "s", "DE1")}}
    assert personal_fields_left(fields, "acme", "s") == ["name", "email", "metadata"]
    assert personal_fields_left(erased, "acme", "s") == []
    assert personal_fields_left({"name": "acme"}, "acme", "s") == []   # the id as name


def test_the_tax_id_and_postal_code_are_erased_while_the_tax_jurisdiction_stays():
    fields = {"id": "globex", "name": "Globex", "tax_id": "DE123456789",
              "address": {"country": "DE", "region": "BE", "postal_code": "10115"}}
    erased = erased_customer_fields(fields, "globex", "s")
    assert erased["tax_id"] == value_pseudonym("globex", "s", "DE123456789")
    assert erased["address"] == {"country": "DE", "region": "BE",
                                 "postal_code": value_pseudonym("globex", "s", "10115")}
    assert personal_fields_left(fields, "globex", "s") == ["name", "tax_id", "address"]
    assert personal_fields_left(erased, "globex", "s") == []
    # a customer without address or tax id keeps having none (no reverse charge appears)
    assert "tax_id" not in erased_customer_fields({"name": "X"}, "x", "s")


def test_stored_copies_are_found_in_any_case_and_json_escaped():
    assert sweep_terms(["Acme", "Acme Corporation", "ab", "acme", None], "acme") == [
        "Acme Corporation", "Acme"]
    forms = text_forms('Müller "M" GmbH')
    assert 'M\\u00fcller \\"M\\" GmbH' in forms and 'Müller \\"M\\" GmbH' in forms
    text = '{"who": "ACME corporation", "mail": "billing@acme.example"}'
    assert replace_terms(text, {"Acme Corporation": "P", "Billing@Acme.example": "E"}) == \
        '{"who": "P", "mail": "E"}'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")


def faults(folder: Path, text: str) -> list[str]:
    (folder / "privacy.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    return caught.value.faults


def test_personal_properties_are_loaded_from_any_file(folder: Path):
    (folder / "privacy.yaml").write_text("personal_properties: [user_id, user.email]\n")
    assert load_catalog(folder).personal_properties == ("user_id", "user.email")


def test_personal_properties_are_validated_like_the_rest_of_the_catalog(folder: Path):
    assert faults(folder, "personal_properties: user_id\n") == [
        f"{folder / 'privacy.yaml'}: personal_properties: must be a list of property names"]
    [bad] = faults(folder, "personal_properties: [{x: 1}]\n")
    assert "personal_properties[0]: a personal property must be a property name" in bad
    [empty_part] = faults(folder, "personal_properties: [user..email]\n")
    assert "'user..email'" in empty_part
    [twice] = faults(folder, "personal_properties: [user_id, user_id]\n")
    assert "duplicate personal property 'user_id' (also at " in twice
    # what a meter sums or filters on would bill differently once pseudonymised
    [summed] = faults(folder, "personal_properties: [tokens]\n")
    assert "meter(s) tokens sum or filter on" in summed
    [filtered] = faults(folder, "personal_properties: [region]\n")
    assert "meter(s) eu_compute_minutes" in filtered
    # a unique_count's property stays countable: each value keeps its own pseudonym
    (folder / "privacy.yaml").write_text("personal_properties: [user_id]\n")
    assert load_catalog(folder).personal_properties == ("user_id",)
