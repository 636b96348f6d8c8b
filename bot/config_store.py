"""The [store] config section: where the bot keeps its records."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from bot.config_values import Section as _Model

DSN_ENV = "GRIDBOT_STORE_DSN"
DSN_SHAPE = "postgresql://用户名@主机:5432/库名"


class StoreSection(_Model):
    # "tinydb": files in data_dir (one street or district, one process); "postgres": a
    # PostgreSQL database (bot.store_pg), for a deployment that outgrows one machine's files.
    backend: Literal["tinydb", "postgres"] = "tinydb"
    # postgresql://user:password@host:5432/dbname; GRIDBOT_STORE_DSN overrides it, so the
    # password need not be written in the file. A secret: never shown in logs or errors.
    dsn: SecretStr = Field(SecretStr(""), validate_default=True)
    # Where photo files go (bot.photos.media_store); relative paths resolve against the config
    # file's folder. Unset or "": data_dir/media. Several processes: a folder all of them mount.
    media_dir: Path | None = None

    @field_validator("media_dir", mode="before")
    @classmethod
    def _media_dir(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, v: SecretStr, info: ValidationInfo) -> SecretStr:
        text = v.get_secret_value().strip()
        if info.data.get("backend") != "postgres":
            return v
        if not text:
            raise ValueError(f'backend = "postgres" 时必须填写数据库地址,形如 "{DSN_SHAPE}",'
                             f"也可以用环境变量 {DSN_ENV} 提供(密码就不必写在文件里)")
        try:
            parts = urlsplit(text)
            ok = parts.scheme in ("postgresql", "postgres") and bool(parts.hostname or parts.query)
        except ValueError:
            ok = False
        if not ok:
            # The value itself is not repeated: it may hold the password.
            raise ValueError(f'数据库地址格式不对,应形如 "{DSN_SHAPE}"(以 postgresql:// 开头)')
        return SecretStr(text)

    def secret_values(self) -> list[str]:
        """The DSN and its password, for the log's mask."""
        text = self.dsn.get_secret_value()
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        return [s for s in (text, password) if s]
