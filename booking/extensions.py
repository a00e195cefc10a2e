"""Unbound Flask extensions, bound to the app in ``create_app``.

Importing this module never imports views, so models and services can use it freely.
"""

from __future__ import annotations

import enum
from typing import Any

from flask_babel import Babel
from flask_bootstrap import Bootstrap5
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Enum, MetaData, String
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so migrations can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def migration_compare_type(
    context: Any, _inspected: Any, _column: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    """How ``flask db migrate`` and ``flask db check`` compare a column's type with the
    model's: Alembic's own comparison, on the type a TypeDecorator stores (an encrypted text
    is a TEXT column), except VARCHAR lengths on SQLite, which ignores them (migrations resize
    columns only where the database enforces the size). Without it, a migration generated on
    SQLite would rebuild tables for nothing."""
    metadata_type = getattr(metadata_type, "impl_instance", metadata_type)
    both_strings = isinstance(inspected_type, String) and isinstance(metadata_type, String)
    if context.dialect.name == "sqlite" and both_strings:
        return False
    return None


mail = Mail()
csrf = CSRFProtect()
babel = Babel()
bootstrap = Bootstrap5()
login_manager = LoginManager()
talisman = Talisman()
# Limits are declared on the views that need them (login, password reset, form submission);
# storage is memory by default, Redis when configured (RATELIMIT_STORAGE_URI).
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def value_enum(cls: type[enum.Enum], name: str, length: int = 20) -> Enum:
    """A column type storing an enum's values in a VARCHAR with a CHECK constraint.

    Portable across SQLite and PostgreSQL, readable in plain SQL, and migrations need no
    ``CREATE TYPE``.
    """
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )
