"""The console's languages: gettext catalogs and the Chinese/English ways to show values.

Catalogs are the ``locale/<lang>/LC_MESSAGES/messages.po`` files, compiled in memory at
start-up, so a checkout runs without a ``pybabel compile`` step.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from shequ.core.clock import as_utc
from shequ.core.money import format_fen


def N_(msgid: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    """Mark ``msgid`` for extraction; the template translates it when it renders."""
    return msgid


LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}
ROLE_NAMES = {
    "admin": N_("Administrator"),
    "operator": N_("Operator"),
    "analyst": N_("Analyst"),
    "moderator": N_("Moderator"),
    "campaign_manager": N_("Campaign manager"),
    "partner": N_("Brand partner"),
}

_DATE = {"zh_CN": "y年M月d日", "en": "MMM d, y"}
_SHORT_DATE = {"zh_CN": "M月d日", "en": "MMM d"}
_DATETIME = {"zh_CN": "y年M月d日 HH:mm", "en": "MMM d, y HH:mm"}


def catalog_path(locale: str) -> Path:
    """Where the ``.po`` file of ``locale`` lives."""
    return LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"


def load_translations(locale: str) -> gettext.GNUTranslations:
    """The compiled catalog of ``locale``, built from its ``.po`` file in memory."""
    with catalog_path(locale).open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def chosen_locale(value: object, default: str = DEFAULT_LOCALE) -> str:
    """``value`` if it names a console language, else ``default``."""
    return value if isinstance(value, str) and value in LOCALES else default


class Formats:
    """How one language shows dates, money and counts, in the business time zone."""

    def __init__(self, locale: str, zone: ZoneInfo) -> None:
        self.locale = locale
        self.zone = zone

    def _local(self, value: date | datetime) -> date | datetime:
        return as_utc(value).astimezone(self.zone) if isinstance(value, datetime) else value

    def day(self, value: date | datetime) -> str:
        """``2026年11月20日`` / ``Nov 20, 2026``."""
        return format_date(self._local(value), _DATE[self.locale], locale=self.locale)

    def short_day(self, value: date | datetime) -> str:
        """``11月20日`` / ``Nov 20`` (chart axes)."""
        return format_date(self._local(value), _SHORT_DATE[self.locale], locale=self.locale)

    def moment(self, value: datetime) -> str:
        """``2026年11月20日 16:00`` / ``Nov 20, 2026 16:00`` in the business time zone."""
        return format_datetime(as_utc(value), _DATETIME[self.locale], tzinfo=self.zone,
                               locale=self.locale)

    def money(self, fen: int) -> str:
        """``¥12.35万`` in Chinese, ``¥123,456.00`` in English."""
        return format_fen(fen, self.locale)

    @staticmethod
    def exact_money(fen: int) -> str:
        """``¥12,999.00`` in every language: prices in tables are read to the fen."""
        # format_fen abbreviates to 万/亿 only for zh_CN; its plain form is the exact amount.
        return format_fen(fen, "en")

    @staticmethod
    def number(value: int) -> str:
        """``12,345``."""
        return f"{value:,}"
