"""The console's message catalogs and its Chinese/English formats."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from shequ.entrypoints.console import i18n
from shequ.entrypoints.console.i18n import LOCALES, Formats, catalog_path, load_translations

CONSOLE = Path(i18n.__file__).parent
KEYWORDS = {"_": None, "N_": None, "gettext": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _used_msgids() -> set[str]:
    """Every msgid of the templates (jinja2 extractor) and of ``N_()`` in the code."""
    found: set[str] = set()
    sources: list[tuple[Any, Path]] = [
        *((babel_extract, path) for path in sorted((CONSOLE / "templates").glob("*.html"))),
        *(("python", path) for path in sorted(CONSOLE.glob("*.py")))]
    for method, path in sources:
        for _line, msg, _c, _x in extract_from_file(method, str(path), keywords=KEYWORDS,
                                                    options={"extensions": "jinja2.ext.i18n"}):
            assert isinstance(msg, str), f"{path.name}: plural forms are not used: {msg!r}"
            found.add(msg)
    return found


def _catalog(locale: str) -> Catalog:
    with catalog_path(locale).open("rb") as source:
        return read_po(source, locale=locale)


def test_templates_and_code_use_messages() -> None:
    used = _used_msgids()
    assert {"Overview", "Products", "Audit log", "API keys", "Wrong username or password."} <= used
    assert len(used) > 90


@pytest.mark.parametrize("locale", LOCALES)
def test_every_msgid_is_in_the_catalog(locale: str) -> None:
    catalog = _catalog(locale)
    known = {m.id for m in catalog if m.id}
    assert sorted(_used_msgids() - known) == []
    assert sorted(known - _used_msgids()) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated_with_its_placeholders(locale: str) -> None:
    catalog = _catalog(locale)
    for message in catalog:
        if not message.id:
            continue
        assert message.string, f"{locale}: {message.id!r} has no translation"
        assert not message.fuzzy, f"{locale}: {message.id!r} is fuzzy"
        assert set(PLACEHOLDER.findall(str(message.id))) == \
            set(PLACEHOLDER.findall(str(message.string))), message.id


def test_catalogs_compile_in_memory() -> None:
    assert load_translations("zh_CN").gettext("Audit log") == "审计日志"
    assert load_translations("en").gettext("Audit log") == "Audit log"


def test_dates_in_the_business_time_zone() -> None:
    # 17:30 UTC on the 19th is already the 20th in Shanghai.
    late = datetime(2026, 11, 19, 17, 30, tzinfo=UTC)
    zh, en = Formats("zh_CN", SHANGHAI), Formats("en", SHANGHAI)
    assert (zh.day(late), en.day(late)) == ("2026年11月20日", "Nov 20, 2026")
    assert (zh.moment(late), en.moment(late)) == ("2026年11月20日 01:30", "Nov 20, 2026 01:30")
    assert (zh.short_day(date(2026, 1, 5)), en.short_day(date(2026, 1, 5))) == ("1月5日", "Jan 5")


def test_money_the_chinese_way() -> None:
    zh, en = Formats("zh_CN", SHANGHAI), Formats("en", SHANGHAI)
    assert (zh.money(123456), en.money(123456)) == ("¥1,234.56", "¥1,234.56")
    assert zh.money(12_346_000) == "¥12.35万"
    assert (zh.money(123456789), en.money(123456789)) == ("¥123.46万", "¥1,234,567.89")
    assert zh.exact_money(123456789) == "¥1,234,567.89"
    assert zh.number(1234567) == "1,234,567"
