"""Regenerate fedem's embedded corpus (fedem/data/corpus/*.txt) from Unicode CLDR via Babel.

Run by maintainers only (``pip install babel && python scripts/build_corpus.py``); the output
is committed so that fedem needs no network and no Babel at run time. Each document (blank-line
separated) is a handful of localized lines: a full date, a list of place names joined with the
locale's own list grammar, currency amounts and durations, and the names of languages, days
and months, all in the locale's script. Deterministic: same Babel, same bytes.

Data: Unicode CLDR, distributed with Babel (BSD-3-Clause); CLDR is under the Unicode License v3.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_timedelta
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal

LANGS = ["en", "hi", "bn", "te", "ta", "mr", "kn", "gu", "ml", "pa", "or", "as"]
OUT = Path(__file__).resolve().parents[1] / "fedem" / "data" / "corpus"
TARGET_BYTES = 90_000


def document(loc: Locale, lang: str, rng: random.Random) -> str:
    names = sorted(v for k, v in loc.territories.items() if k.isalpha())
    langs = sorted(loc.languages.values())
    months = list(loc.months["format"]["wide"].values())
    days = list(loc.days["format"]["wide"].values())
    date = dt.date(1990, 1, 1) + dt.timedelta(days=rng.randrange(16000))
    lines = [
        format_date(date, format="full", locale=lang),
        format_list(rng.sample(names, rng.randint(3, 7)), locale=lang),
        format_list(rng.sample(langs, rng.randint(2, 5)), locale=lang),
        " · ".join(rng.sample(months, 3) + rng.sample(days, 2)),
        format_currency(rng.randrange(100, 10**6) / 100, "INR", locale=lang)
        + " — "
        + format_decimal(rng.randrange(10**7) / 1000, locale=lang),
        format_timedelta(dt.timedelta(minutes=rng.randrange(1, 10**5)), locale=lang, add_direction=True),
    ]
    rng.shuffle(lines)
    return "\n".join(lines[: rng.randint(3, len(lines))])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        rng = random.Random(f"fedem-corpus-{lang}")
        loc = Locale.parse(lang)
        docs, size = [], 0
        while size < TARGET_BYTES:
            doc = document(loc, lang, rng)
            docs.append(doc)
            size += len(doc.encode()) + 2
        (OUT / f"{lang}.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
        print(f"{lang}: {len(docs)} docs, {size} bytes")


if __name__ == "__main__":
    main()
