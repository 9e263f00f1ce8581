"""Package status labels in the shopper's language (mappings/status_labels.py, docs/labels.md), without HTTP: the
shipped language files against the schema, the choice of language, merchant overrides and their validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphql import GraphQLEnumType

from gateway.settings import ConfigError, load_settings, parse_settings
from localstore.executor import admin_schema
from mappings.status_labels import (
    ENGLISH,
    StatusLabels,
    built_in_labels,
    locale_candidates,
    normalise_locale,
    parse_overrides,
)

LABELS_DIR = Path(__file__).resolve().parent.parent / "mappings" / "labels"
REQUIRED_LANGUAGES = {"en", "zh-CN", "zh-TW", "ja", "ko", "fr", "de", "es", "it", "pt-BR", "pt-PT", "nl", "sv", "da",
                      "nb", "fi", "pl", "tr", "th", "vi"}  # fmt: skip
#: Statuses that say the same thing to a shopper (the merchant marked it shipped, or it shipped): one label.
SAME_FOR_A_SHOPPER = {"FULFILLED", "MARKED_AS_FULFILLED"}


def schema_statuses() -> set[str]:
    """Every value of the two enums a package status comes from, in the schema the gateway is pinned to."""
    found: set[str] = set()
    for name in ("FulfillmentDisplayStatus", "FulfillmentEventStatus"):
        enum = admin_schema().get_type(name)
        assert isinstance(enum, GraphQLEnumType)
        found |= set(enum.values)
    return found


def test_every_language_labels_exactly_the_schemas_statuses() -> None:
    statuses = schema_statuses()
    assert len(statuses) == 18  # 2026-10: the 18 display statuses, the 11 event statuses among them
    shipped = built_in_labels()
    assert REQUIRED_LANGUAGES <= set(shipped)
    for language, labels in shipped.items():
        assert set(labels.statuses) == statuses, (
            f"{language}: missing {sorted(statuses - set(labels.statuses))}, "
            f"unknown {sorted(set(labels.statuses) - statuses)}"
        )


def test_language_files_are_well_formed_and_say_different_things() -> None:
    files = sorted(LABELS_DIR.glob("*.json"))
    assert len(files) == len(built_in_labels())
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert set(data) == {"language", "name", "generic", "statuses"}
        assert path.stem == data["language"] == normalise_locale(data["language"])
        labels = [data["generic"], *data["statuses"].values()]
        assert all(isinstance(t, str) and t == t.strip() and 0 < len(t) <= 40 for t in labels), path.name
        # a shopper tells the statuses apart: two statuses share a label only when they mean the same to them
        distinct = {label for status, label in data["statuses"].items() if status not in SAME_FOR_A_SHOPPER}
        assert len(distinct) == len(data["statuses"]) - len(SAME_FOR_A_SHOPPER), path.name
        assert len({data["statuses"][s] for s in SAME_FOR_A_SHOPPER}) == 1, path.name
        assert data["generic"] not in data["statuses"].values(), path.name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fr-Fr", "fr-FR"),
        ("zh-cn", "zh-CN"),
        ("pt-br", "pt-BR"),
        ("pt_BR", "pt-BR"),
        ("ZH-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        (" en ", "en"),
        ("", None),
        (None, None),
        ("x", None),
        ("français", None),
        ("fr-", None),
    ],
)
def test_locales_are_normalised(raw: str | None, expected: str | None) -> None:
    assert normalise_locale(raw) == expected


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("fr-Fr", ("fr-FR", "fr")),
        ("pt-br", ("pt-BR", "pt")),
        ("pt", ("pt", "pt-BR")),  # Portuguese alone: Brazilian
        ("pt-AO", ("pt-AO", "pt-PT", "pt", "pt-BR")),  # Angola writes the European norm
        ("zh", ("zh", "zh-CN")),  # Chinese alone: Simplified
        ("zh-HK", ("zh-HK", "zh-TW", "zh", "zh-CN")),  # Hong Kong: Traditional
        ("zh-Hant-HK", ("zh-Hant-HK", "zh-Hant", "zh-TW", "zh", "zh-CN")),
        ("no", ("no", "nb")),  # Norwegian and Nynorsk readers read Bokmål
        ("nn-NO", ("nn-NO", "nn", "nb")),
        ("is-IS", ("is-IS", "is")),
        (None, ()),
    ],
)
def test_each_locale_tries_its_shorter_forms_and_aliases(locale: str | None, expected: tuple[str, ...]) -> None:
    assert locale_candidates(locale) == expected


def test_the_order_language_then_its_base_then_the_shop_then_english() -> None:
    labels = StatusLabels()
    # the order's own language, normalised: no shop locale needed
    assert not labels.needs_shop_locale("zh-cn")
    assert labels.for_order("zh-cn")("IN_TRANSIT") == "运输中"
    # the base language of a regional locale we have no file for
    assert not labels.needs_shop_locale("fr-Fr")
    assert labels.for_order("fr-Fr")("IN_TRANSIT") == "En cours d'acheminement"
    assert labels.for_order("de-AT")("DELIVERED") == "Zugestellt"
    assert labels.for_order("pt-br")("OUT_FOR_DELIVERY") == "Saiu para entrega"
    assert labels.for_order("pt-PT")("OUT_FOR_DELIVERY") == "Em distribuição"
    assert labels.for_order("zh-HK")("DELIVERED") == "已送達"
    assert labels.for_order("nb-NO")("DELIVERED") == labels.for_order("no")("DELIVERED") == "Levert"
    # a language without labels: the shop's primary locale, else English
    for untranslated in ("is-IS", "sw", None, "not a locale"):
        assert labels.needs_shop_locale(untranslated)
        assert labels.for_order(untranslated, "de").language == "de"
        assert labels.for_order(untranslated, "de")("IN_TRANSIT") == "Unterwegs"
        assert labels.for_order(untranslated, "is").language == ENGLISH  # nor has the shop's
        assert labels.for_order(untranslated, None)("IN_TRANSIT") == "In transit"
    # the order's language wins over the shop's
    assert labels.for_order("ja", "de")("DELIVERED") == "配達完了"


def test_unknown_and_missing_statuses_get_a_generic_label_in_the_language() -> None:
    labels = StatusLabels()
    assert labels.for_order("en")("SOMETHING_NEW") == "Something new"  # English: the status made readable
    assert labels.for_order("fr")("SOMETHING_NEW") == "En cours de traitement"  # never an English fragment
    assert labels.for_order("fr")(None) == "En cours de traitement"
    assert labels.for_order("en")(None) == labels.for_order("en")("") == "Processing"
    assert labels.for_order("fr")("in_transit") == "En cours d'acheminement"  # case of the code does not matter


def test_overrides_win_per_locale_and_the_flat_form_is_english() -> None:
    labels = StatusLabels(
        parse_overrides(
            {
                "IN_TRANSIT": "On its way",
                "fr": {"IN_TRANSIT": "En route"},
                "fr-CA": {"DELIVERED": "Livré à votre porte"},
                "is": {"DELIVERED": "Afhent"},
            }
        )
    )
    assert labels.for_order("en-US")("IN_TRANSIT") == "On its way"
    assert labels.for_order("en-US")("DELIVERED") == "Delivered"
    assert labels.for_order("fr-Fr")("IN_TRANSIT") == "En route"
    assert labels.for_order("fr-Fr")("DELIVERED") == "Livré"  # not overridden: built in
    # a regional override, then its base language's override and built-in labels
    assert labels.for_order("fr-CA")("DELIVERED") == "Livré à votre porte"
    assert labels.for_order("fr-CA")("IN_TRANSIT") == "En route"
    assert labels.for_order("fr-CA").language == "fr-CA"
    # a language only the merchant wrote: its labels, then the shop's language for the rest
    assert labels.for_order("is-IS", "de").language == "is"
    assert labels.for_order("is-IS", "de")("DELIVERED") == "Afhent"
    assert labels.for_order("is-IS", "de")("IN_TRANSIT") == "Unterwegs"
    assert labels.for_order("is-IS", None)("IN_TRANSIT") == "On its way"  # the English override, last
    assert labels.for_order("ja")("IN_TRANSIT") == "輸送中"  # other languages keep their built-in labels


def test_override_keys_are_normalised() -> None:
    assert parse_overrides({"in_transit": " On its way ", "PT_br": {"delivered": "Chegou"}}) == {
        "en": {"IN_TRANSIT": "On its way"},
        "pt-BR": {"DELIVERED": "Chegou"},
    }


@pytest.mark.parametrize(
    ("status_labels", "message"),
    [
        ({"IN_TRANSITT": "x"}, "IN_TRANSITT: not a Shopify fulfillment status"),
        ({"fr": {"EN_ROUTE": "x"}}, "fr.EN_ROUTE: not a Shopify fulfillment status"),
        ({"fr": "En route"}, "a locale's labels go in a mapping: fr: {IN_TRANSIT: ...}"),
        ({"français": {"IN_TRANSIT": "x"}}, "français: not a locale like fr, pt-BR or zh-CN"),
        ({"IN_TRANSIT": ""}, "IN_TRANSIT: the label must be a non-empty string"),
        ({"de": {"DELIVERED": 3}}, "de.DELIVERED: the label must be a non-empty string"),
        ({"IN_TRANSIT": "a", "en": {"IN_TRANSIT": "b"}}, "en.IN_TRANSIT: given twice for 'en'"),
        (["IN_TRANSIT"], "status_labels must map statuses"),
    ],
)
def test_bad_overrides_fail_the_config_naming_the_field(status_labels: object, message: str) -> None:
    raw = {
        "shops": {
            "demo": {
                "domain": "demo.myshopify.com",
                "auth": {"mode": "token", "access_token": "t"},
                "secrets": ["s"],
                "status_labels": status_labels,
            }
        }
    }
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, env={})
    assert "shops.demo.status_labels" in str(err.value) and message in str(err.value)


def test_the_shipped_config_shows_both_forms() -> None:
    demo = load_settings(Path(__file__).resolve().parent.parent / "config.yaml", env={}).shops["demo"]
    assert demo.status_labels == {
        "en": {"IN_TRANSIT": "In transit"},
        "fr": {"READY_FOR_PICKUP": "Disponible en boutique"},
    }
    assert demo.labels.for_order("fr-FR")("READY_FOR_PICKUP") == "Disponible en boutique"
    assert demo.labels.for_order("fr-FR")("PICKED_UP") == "Retiré"
