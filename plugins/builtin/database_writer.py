"""``database_writer``: write items to a SQL table (SQLAlchemy Core), optionally as upserts.

A stream sink (Streaming calls it once per micro-batch) that works the same in the batch
modes. Synchronous: the engine runs it in a thread.

Config:
    url (str): A SQLAlchemy database URL (default ``sqlite:///orchestrator.db``, relative to
        the worker's working directory), e.g.
        ``postgresql+psycopg://user@127.0.0.1:5432/db``. Engines are created once per URL
        per process and reused (connection pool with ``pool_pre_ping``).
    table (str, required): The table, a plain identifier (letters, digits and ``_``, not
        starting with a digit, at most 63 characters).
    key (str or list of str): Key column(s). When given, each item is an upsert by key
        (``INSERT ... ON CONFLICT (key) DO UPDATE``, SQLite and PostgreSQL), so writing a
        batch again (a replay after a crash) leaves the table as if it was written once:
        an exactly-once effect. Items of one batch sharing a key are collapsed to the last.
        The table must have a primary key or unique constraint on exactly these columns
        (a table this plugin creates has them as its primary key). Without ``key`` items
        are appended with plain INSERTs (a replay appends again).
    columns (list of str): The columns to write, in this order (default: the union of the
        items' keys in first-seen order). Item fields outside this list are ignored.
    create_table (bool): Create the table when it does not exist (default true), with
        column types inferred from the batch: BOOLEAN, BIGINT (integers), DOUBLE/REAL,
        TEXT, JSON (objects and lists); columns holding only nulls are TEXT. Key columns
        form the primary key.
    add_columns (bool): Add columns that a batch brings and the table lacks, with
        ``ALTER TABLE ... ADD COLUMN`` (nullable, type inferred), default true. When false,
        such a batch is ``PluginExecutionFailed``.

Inputs:
    ``inputs["records"]`` if it is a list (batch mode); otherwise every input that is a list
    of items (Streaming: one per upstream node or port) or an object holding an ``"items"``
    or ``"records"`` list, concatenated in input order.

Values:
    Objects and lists are stored as JSON: natively in JSON columns, as JSON text in other
    columns. The batch writes its columns (``columns``, or the fields its items have): a
    field an item lacks but others have is written as NULL; a column no item of the batch
    has is left alone (an upsert does not touch it; an insert leaves it to its default).

Output:
    ``written`` (rows inserted or upserted), ``table`` (its name).

Files: a SQLite URL's database file (``sqlite:///relative.db``, ``sqlite:////absolute.db``,
a ``file:`` URI) must resolve inside the worker's file roots and not be one of the engine's
own files (:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``; this covers the
embedded Temporal server's SQLite database), else the node fails with
``PluginExecutionFailed`` naming it before anything is opened. Its missing parent
directories are created (SQLite itself creates only the file). In-memory databases need no
file. Other databases are reached over the network and are not under this policy.

Transactions: one per batch. Either every item of the batch is written or none is.

Errors:
    Bad configuration (a ``table`` or ``key`` that is not an identifier, a URL SQLAlchemy
    cannot use, ``key`` on a database other than SQLite/PostgreSQL, a ``key`` the existing
    table has no unique constraint on) is ``InvalidConfiguration`` naming the key. Data the
    database rejects (a type mismatch, a NOT NULL or unique violation, an item lacking a key
    column) is ``PluginExecutionFailed``. Connection problems propagate as SQLAlchemy's
    ``OperationalError``, so the engine's retry policy applies.
"""

from __future__ import annotations

import atexit
import json
import threading
import urllib.parse
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field, StringConstraints, field_validator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    IntegrityError,
    NoSuchModuleError,
    NoSuchTableError,
    OperationalError,
    ProgrammingError,
)

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import config_error, data_error
from plugins.builtin._files import checked_path
from plugins.builtin._models import NonEmptyStr, PluginConfig
from plugins.builtin._streams import collect_items, redact_url

DEFAULT_URL = "sqlite:///orchestrator.db"
_UPSERT_DIALECTS = ("sqlite", "postgresql")

#: A plain SQL identifier: letters, digits and ``_``, not starting with a digit, at most 63.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]


class DatabaseWriterConfig(PluginConfig):
    """Configuration of ``database_writer``."""

    url: NonEmptyStr = Field(
        DEFAULT_URL,
        description="SQLAlchemy database URL, e.g. postgresql+psycopg://user@127.0.0.1:5432/db.",
    )
    table: Identifier = Field(
        description="The table: letters, digits and _, not starting with a digit, at most 63."
    )
    key: (
        Identifier
        | Annotated[list[Identifier], Field(min_length=1, json_schema_extra={"uniqueItems": True})]
        | None
    ) = Field(
        None,
        description="Key column(s): items are upserted by key (an exactly-once effect); "
        "without it they are appended.",
    )
    columns: list[NonEmptyStr] | None = Field(
        None, description="The columns to write, in order (default: the items' fields)."
    )
    create_table: bool = Field(
        True, description="Create the table when missing, with types inferred from the batch."
    )
    add_columns: bool = Field(True, description="Add columns a batch brings and the table lacks.")

    @field_validator("key")
    @classmethod
    def _distinct_keys(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError(f"names a column twice: {value}")
        return value


_engines: dict[str, Engine] = {}


def dispose_engines() -> None:
    """Close every cached connection pool (at interpreter exit, and in tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


atexit.register(dispose_engines)
_tables: dict[tuple[str, str], sa.Table] = {}
_lock = threading.Lock()


class DatabaseWriter(PluginBase):
    """Write the items to a SQL table, upserting by key when one is configured (a sink)."""

    plugin_id = "database_writer"
    Config = DatabaseWriterConfig

    def run(
        self, inputs: dict[str, Any], config: DatabaseWriterConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Write the items.

        Args:
            inputs: The node's inputs; items are found as the module documentation says.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"written": n, "table": name}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or ``PluginExecutionFailed``
                when there are no items or the database rejects the data.
        """
        url, table_name = config.url, config.table
        keys = [config.key] if isinstance(config.key, str) else list(config.key or [])
        items = collect_items(inputs)

        _prepare_database_file(url)
        engine = _engine(url)
        if keys and engine.dialect.name not in _UPSERT_DIALECTS:
            raise config_error(
                "key", f"upserts need SQLite or PostgreSQL; this URL is {engine.dialect.name}"
            )
        columns = list(config.columns) if config.columns is not None else _union_of_keys(items)
        for name in keys:
            if name not in columns:
                columns.append(name)
        if not items:
            return {"written": 0, "table": table_name}

        rows = _rows(items, columns, keys)
        for attempt in range(2):
            table = _prepare_table(
                engine,
                url,
                table_name,
                columns,
                keys,
                rows,
                config.create_table,
                config.add_columns,
            )
            try:
                with engine.begin() as connection:
                    _write(connection, table, [_encode_row(row, table) for row in rows], keys)
                break
            except (IntegrityError, DataError) as exc:
                raise data_error(
                    f"table '{table_name}' rejected the batch: {_first_line(exc)}", table=table_name
                ) from None
            except (ProgrammingError, OperationalError):
                # The cached table may be stale (dropped or altered by someone else): look again.
                with _lock:
                    _tables.pop((url, table_name), None)
                if attempt:
                    raise
        ctx.logger.info(
            "database_writer.done", table=table_name, written=len(rows), upsert=bool(keys)
        )
        return {"written": len(rows), "table": table_name}


database_writer_plugin = DatabaseWriter().as_plugin()


# --- configuration ----------------------------------------------------------------------------


def _prepare_database_file(url: str) -> None:
    """Refuse a SQLite database file outside the file roots, else create its missing parent
    directories (see the module docs)."""
    try:
        parsed = sa.engine.make_url(url)
    except ArgumentError as exc:
        raise config_error("url", f"is not a usable database URL: {exc}") from None
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database.startswith("file:"):  # a URI (uri=true, or a build that always reads them)
        database = _sqlite_uri_path(database, url)
    if database in ("", ":memory:"):
        return
    path = checked_path(database, key="config 'url' (its SQLite file)")
    path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_uri_path(uri: str, url: str) -> str:
    """The file a SQLite ``file:`` URI opens ("" for an in-memory database), read the way
    SQLite reads it: an optional empty or ``localhost`` authority, a percent-encoded path,
    then ``?query`` and ``#fragment``."""
    rest = uri.removeprefix("file:").split("#", 1)[0]
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise config_error("url", f"names a SQLite file on another host: {redact_url(url)}")
        rest = slash + path
    if "memory" in urllib.parse.parse_qs(query).get("mode", []):
        return ""
    return urllib.parse.unquote(rest)


def _engine(url: str) -> Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = sa.create_engine(url, pool_pre_ping=True)
            except (ArgumentError, NoSuchModuleError, ValueError) as exc:
                raise config_error("url", f"is not a usable database URL: {exc}") from None
            _engines[url] = engine
        return engine


# --- rows ---------------------------------------------------------------------------------


def _union_of_keys(items: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        for name in item:
            seen.setdefault(name, None)
    return list(seen)


def _rows(items: list[dict[str, Any]], columns: list[str], keys: list[str]) -> list[dict[str, Any]]:
    rows = [{name: item.get(name) for name in columns} for item in items]
    if not keys:
        return rows
    by_key: dict[tuple[str, ...], dict[str, Any]] = {}
    for index, row in enumerate(rows):
        missing = [name for name in keys if row[name] is None]
        if missing:
            raise data_error(
                f"item {index} has no value for key column(s) {', '.join(missing)}",
                index=index,
            )
        identity = tuple(json.dumps(row[name], sort_keys=True) for name in keys)
        by_key.pop(identity, None)  # the last occurrence wins, in its own position
        by_key[identity] = row
    return list(by_key.values())


def _encode_row(row: dict[str, Any], table: sa.Table) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in row.items():
        column_type = table.c[name].type
        if isinstance(value, dict | list) and not isinstance(column_type, sa.JSON):
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        encoded[name] = value
    return encoded


def _column_type(rows: list[dict[str, Any]], name: str) -> sa.types.TypeEngine[Any]:
    for row in rows:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            return sa.Boolean()
        if isinstance(value, int):
            return sa.BigInteger()
        if isinstance(value, float):
            return sa.Double()
        if isinstance(value, dict | list):
            return sa.JSON()
        return sa.Text()
    return sa.Text()


# --- table --------------------------------------------------------------------------------


def _prepare_table(
    engine: Engine,
    url: str,
    name: str,
    columns: list[str],
    keys: list[str],
    rows: list[dict[str, Any]],
    create_table: bool,
    add_columns: bool,
) -> sa.Table:
    """The table, reflected (and cached), created or extended as the config allows."""
    cache_key = (url, name)
    with _lock:
        table = _tables.get(cache_key)
    if table is not None and all(column in table.c for column in columns):
        return table
    for attempt in range(2):  # a concurrent writer may create or alter it between our steps
        try:
            table = _reflect_or_create(engine, name, columns, keys, rows, create_table)
            missing = [column for column in columns if column not in table.c]
            if missing:
                if not add_columns:
                    raise data_error(
                        f"table '{name}' has no column(s) {', '.join(missing)} and "
                        "'add_columns' is false",
                        table=name,
                        columns=missing,
                    )
                _add_columns(engine, table, missing, rows)
                table = _reflect(engine, name)
            break
        except (ProgrammingError, IntegrityError):
            # PostgreSQL: DuplicateTable / DuplicateColumn, or a pg_type unique violation.
            if attempt:
                raise
        except OperationalError as exc:
            # SQLite reports "table already exists" / "duplicate column" this way.
            if attempt or ("already exists" not in str(exc) and "duplicate" not in str(exc)):
                raise
    assert table is not None
    if keys:
        _check_key_constraint(engine, table, keys)
    with _lock:
        _tables[cache_key] = table
    return table


def _reflect(engine: Engine, name: str) -> sa.Table:
    table = sa.Table(name, sa.MetaData(), autoload_with=engine)
    for column in table.c:
        if isinstance(column.type, sa.JSON):
            column.type.none_as_null = True  # a missing value is SQL NULL, not JSON 'null'
    return table


def _reflect_or_create(
    engine: Engine,
    name: str,
    columns: list[str],
    keys: list[str],
    rows: list[dict[str, Any]],
    create_table: bool,
) -> sa.Table:
    try:
        return _reflect(engine, name)
    except NoSuchTableError:
        if not create_table:
            raise config_error(
                "table", f"'{name}' does not exist and 'create_table' is false"
            ) from None
    table = sa.Table(
        name,
        sa.MetaData(),
        *(
            sa.Column(column, _column_type(rows, column), nullable=column not in keys)
            for column in columns
        ),
    )
    if keys:
        table.append_constraint(sa.PrimaryKeyConstraint(*keys))
    with engine.begin() as connection:
        table.create(connection, checkfirst=True)
    return _reflect(engine, name)


def _add_columns(
    engine: Engine, table: sa.Table, missing: list[str], rows: list[dict[str, Any]]
) -> None:
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as connection:
        for column in missing:
            column_type = _column_type(rows, column).compile(dialect=engine.dialect)
            connection.execute(
                sa.text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.quote(column)} {column_type}"
                )
            )


def _check_key_constraint(engine: Engine, table: sa.Table, keys: list[str]) -> None:
    wanted = set(keys)
    if {column.name for column in table.primary_key.columns} == wanted:
        return
    inspector = sa.inspect(engine)
    for constraint in inspector.get_unique_constraints(table.name):
        if set(constraint["column_names"]) == wanted:
            return
    for index in inspector.get_indexes(table.name):
        if index.get("unique") and set(index["column_names"]) == wanted:
            return
    raise config_error(
        "key",
        f"table '{table.name}' has no primary key or unique constraint on "
        f"({', '.join(keys)}), so rows cannot be upserted by it",
    )


# --- writing ------------------------------------------------------------------------------


def _write(
    connection: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    if not keys:
        connection.execute(sa.insert(table), rows)
        return
    dialect = connection.dialect.name
    statement: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    others = [name for name in rows[0] if name not in keys]
    if others:
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in others}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    connection.execute(statement, rows)


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
