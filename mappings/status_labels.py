"""Readable package statuses (PROTOCOL §6 `package_status`) in the shopper's language. Pure: no I/O but reading the
shipped data files once, no dialect, no config objects.

The built-in labels are data files, one per language: `mappings/labels/<locale>.json` with the language's `name`, its
`generic` label (a fulfillment with no status yet) and one label per value of Shopify's `FulfillmentDisplayStatus`
and `FulfillmentEventStatus` (the test suite holds every file to the 2026-10 schema's enums, both ways).

Which language an order's labels are in (docs/labels.md): the order's `customerLocale`, normalised (`fr-Fr` →
`fr-FR`), then shorter forms of it (`fr-FR` → `fr`; aliases such as `zh` → `zh-CN`, `no` → `nb`), then the same for the
shop's primary locale, then English. A merchant's overrides (per locale; the flat form is English) count as labels of
their locale: each status takes the first label found along that chain.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: The language every chain ends with, and the one the flat form of `status_labels` overrides.
ENGLISH = "en"

#: Where a shorter form of a locale is not the language's labels we ship, the locale we ship for it. Chinese without
#: a script or region is read as Simplified (the larger readership; Shopify's own Chinese locales are zh-CN and
#: zh-TW); Hong Kong and Macao write Traditional. Portuguese alone is Brazilian (most speakers), but the African and
#: Asian Portuguese-speaking countries follow the European norm. Norwegian (`no`) and Nynorsk (`nn`) readers read
#: Bokmål, which is what `nb` is.
ALIASES: Mapping[str, str] = {
    "zh": "zh-CN",
    "zh-Hans": "zh-CN",
    "zh-Hant": "zh-TW",
    "zh-HK": "zh-TW",
    "zh-MO": "zh-TW",
    "pt": "pt-BR",
    **{f"pt-{region}": "pt-PT" for region in ("AO", "CV", "GQ", "GW", "LU", "MO", "MZ", "ST", "TL", "CH")},
    "no": "nb",
    "nn": "nb",
}

_LANGUAGE = re.compile(r"[a-z]{2,3}")
_SUBTAG = re.compile(r"[A-Za-z0-9]{1,8}")


def normalise_locale(raw: str | None) -> str | None:
    """A BCP 47 tag in its canonical casing (`fr-Fr` → `fr-FR`, `zh_hant_tw` → `zh-Hant-TW`, `es-419` stays), or
    None when `raw` is not a language tag at all (empty, `x`, `français`)."""
    if not raw:
        return None
    parts = re.split(r"[-_]", raw.strip())
    language = parts[0].lower()
    if not _LANGUAGE.fullmatch(language):
        return None
    tag = [language]
    for part in parts[1:]:
        if not _SUBTAG.fullmatch(part):
            return None
        if len(part) == 4 and part.isalpha():
            tag.append(part.title())  # script: Hant, Latn
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            tag.append(part.upper())  # region: FR, 419
        else:
            tag.append(part.lower())  # variant or extension
    return "-".join(tag)


def locale_candidates(locale: str | None) -> tuple[str, ...]:
    """The languages to try for one locale, most specific first: the normalised tag, then each shorter form, each
    followed by its alias (`zh-Hant-HK` → zh-Hant-HK, zh-Hant, zh-TW, zh, zh-CN). Empty for no tag."""
    tag = normalise_locale(locale)
    if tag is None:
        return ()
    parts = tag.split("-")
    found: list[str] = []
    for end in range(len(parts), 0, -1):
        step = "-".join(parts[:end])
        for candidate in (step, ALIASES.get(step)):
            if candidate and candidate not in found:
                found.append(candidate)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class LanguageLabels:
    """One shipped language file."""

    language: str
    name: str
    generic: str
    statuses: Mapping[str, str]


@cache
def built_in_labels() -> Mapping[str, LanguageLabels]:
    """Every shipped language, by locale (`fr`, `pt-BR`): read once per process."""
    found: dict[str, LanguageLabels] = {}
    for entry in resources.files("mappings").joinpath("labels").iterdir():
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            found[data["language"]] = LanguageLabels(
                language=data["language"], name=data["name"], generic=data["generic"], statuses=data["statuses"]
            )
    return found


def known_statuses() -> frozenset[str]:
    """The statuses the English file labels (the tests hold it, and every other file, to the schema's enums)."""
    return frozenset(built_in_labels()[ENGLISH].statuses)


def _humanised(status: str) -> str:
    return status.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class PackageLabels:
    """The labels of one order's packages: call it with a `FulfillmentDisplayStatus` (or event status) value.

    `chain` is the languages tried, in order; `language` is the first of them with any label (what the shopper
    reads, for the console). A status with no label anywhere (one Shopify added after our schema) gets a generic
    label: in English the status itself made readable, elsewhere the language's "in progress" word, so a French
    shopper never reads an English fragment."""

    chain: tuple[str, ...]
    language: str
    overrides: Mapping[str, Mapping[str, str]]

    def __call__(self, status: str | None) -> str:
        key = (status or "").upper()
        built_in = built_in_labels()
        if key:
            for language in self.chain:
                label = self.overrides.get(language, {}).get(key)
                if label is None and language in built_in:
                    label = built_in[language].statuses.get(key)
                if label is not None:
                    return label
        generic = next((built_in[lang] for lang in self.chain if lang in built_in), built_in[ENGLISH])
        if key and generic.language == ENGLISH:
            return _humanised(key)
        return generic.generic


class StatusLabels:
    """The built-in labels with one shop's overrides (`{locale: {status: label}}`, already validated)."""

    __slots__ = ("_overrides", "_english")

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._overrides = {locale: dict(labels) for locale, labels in (overrides or {}).items()}
        self._english = self._choose(())

    def needs_shop_locale(self, customer_locale: str | None) -> bool:
        """Whether the order's own locale leaves some status without a label of that language, so the shop's primary
        locale is the next step (`for_order` then wants it). Asked first so the shop's locales are read only when
        they matter."""
        return not any(lang in built_in_labels() for lang in locale_candidates(customer_locale))

    def for_order(self, customer_locale: str | None, shop_locale: str | None = None) -> PackageLabels:
        """The labels of an order placed in `customer_locale`, in a shop whose primary locale is `shop_locale` (None:
        not known, or not needed: see `needs_shop_locale`)."""
        if customer_locale is None and shop_locale is None:
            return self._english
        return self._choose((*locale_candidates(customer_locale), *locale_candidates(shop_locale)))

    def _choose(self, candidates: tuple[str, ...]) -> PackageLabels:
        chain = tuple(dict.fromkeys((*candidates, ENGLISH)))
        built_in = built_in_labels()
        language = next(lang for lang in chain if lang in built_in or lang in self._overrides)
        return PackageLabels(chain, language, self._overrides)


def parse_overrides(raw: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """A shop's `status_labels` config in either form, as `{locale: {STATUS: label}}` with canonical locales and
    upper-case statuses. A string value is the flat form (English: `IN_TRANSIT: On its way`); a mapping value is one
    locale's labels (`fr: {IN_TRANSIT: En route}`). Raises ValueError naming the offending key: a locale that is not
    a language tag, a status that Shopify does not have (a typo would silently never apply), an empty label, the same
    status given twice for one locale (`IN_TRANSIT` flat and under `en`, or under `fr` and `FR`)."""
    parsed: dict[str, dict[str, str]] = {}
    statuses = known_statuses()

    def put(locale: str, status: object, label: object, where: str) -> None:
        key = status.strip().upper() if isinstance(status, str) else ""
        if key not in statuses:
            hint = ""
            if not where and isinstance(status, str) and set(locale_candidates(status)) & set(built_in_labels()):
                hint = f"; a locale's labels go in a mapping: {status}: {{IN_TRANSIT: ...}}"
            raise ValueError(
                f"{where}{status}: not a Shopify fulfillment status (one of {', '.join(sorted(statuses))}){hint}"
            )
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{where}{status}: the label must be a non-empty string")
        if key in parsed.setdefault(locale, {}):
            raise ValueError(f"{where}{status}: given twice for {locale!r}")
        parsed[locale][key] = label.strip()

    for name, value in raw.items():
        if isinstance(value, Mapping):
            locale = normalise_locale(str(name))
            if locale is None:
                raise ValueError(f"{name}: not a locale like fr, pt-BR or zh-CN")
            for status, label in value.items():
                put(locale, status, label, f"{name}.")
        else:
            put(ENGLISH, name, value, "")
    return parsed
