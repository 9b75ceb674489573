"""Process-wide settings, read from ``SHEQU_*`` environment variables.

One :class:`Settings` object is built at start-up and handed to everything that needs it;
nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev", "development"})
DEFAULT_SECRET = "change-me"

Environment = Literal["development", "test", "production"]


class Settings(BaseSettings):
    """Where shequ keeps its data and how it talks to its stores."""

    model_config = SettingsConfigDict(env_prefix="SHEQU_", extra="ignore")

    home: Path = Field(default=Path("shequ-data"), description="Data directory")
    database_url: str | None = Field(default=None, description="OLTP store (SQLAlchemy URL)")
    events_url: str | None = Field(default=None, description="Event store (duckdb:/// or postgres)")
    queue_url: str | None = Field(default=None, description="Job queue (sqlite:/// or redis://)")
    secret_key: str = Field(default=DEFAULT_SECRET, description="Signs sessions and codes")
    environment: Environment = "development"
    timezone: str = "Asia/Shanghai"
    locale: Literal["zh_CN", "en"] = "zh_CN"
    smtp_host: str | None = Field(default=None, description="Alert e-mail relay; None: no e-mail")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="shequ-alerts@localhost", description="Alert e-mail sender")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _real_secret_outside_development(self) -> Settings:
        placeholder = self.secret_key.strip().lower() in PLACEHOLDER_SECRETS
        if self.environment != "development" and placeholder:
            raise ValueError(
                "SHEQU_SECRET_KEY is a placeholder; set a long random secret "
                "(for example `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                f"before running with SHEQU_ENVIRONMENT={self.environment}"
            )
        if self.environment != "development" and len(self.secret_key) < 32:
            raise ValueError("SHEQU_SECRET_KEY must be at least 32 characters outside development")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The deployment's business time zone (daily figures are cut at its midnight)."""
        return ZoneInfo(self.timezone)

    @property
    def resolved_database_url(self) -> str:
        """The OLTP URL: ``SHEQU_DATABASE_URL`` or a SQLite file under the home."""
        return self.database_url or f"sqlite:///{self.home.resolve() / 'shequ.db'}"

    @property
    def resolved_events_url(self) -> str:
        """The event store URL: ``SHEQU_EVENTS_URL`` or a DuckDB file under the home."""
        return self.events_url or f"duckdb:///{self.home.resolve() / 'events.duckdb'}"

    @property
    def resolved_queue_url(self) -> str:
        """The job queue URL: ``SHEQU_QUEUE_URL`` or a SQLite file under the home."""
        return self.queue_url or f"sqlite:///{self.home.resolve() / 'queue.db'}"

    def ensure_home(self) -> Path:
        """Create the data directory if needed and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def load_settings(home: Path | None = None) -> Settings:
    """Settings from the environment, with ``home`` (``--home``) taking precedence."""
    if home is None:
        return Settings()
    return Settings(home=home)
