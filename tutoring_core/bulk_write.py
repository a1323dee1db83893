# ruff: noqa: S608 - table and column names come from the model's _meta; every value is
# a bound parameter or COPY data.
"""Writing many model rows at once, the same way on SQLite and PostgreSQL.

``bulk_write`` has the contract of ``QuerySet.bulk_create`` with ``ignore_conflicts``
or ``update_conflicts``/``unique_fields``/``update_fields``, except that keys the
database generates (AutoField ids) are not read back. The roster's bulk functions
(accounts/bulk.py, classes/bulk.py) and the roster sync's mapping use it.

Why not bulk_create itself: at district scale (400,000 rows, bench/roster.py) Django
spends most of an import compiling one parameter per field per row and psycopg quotes
each array element in Python; bulk_create made a size-L import four times slower than
this. Here the rows are loaded into a temporary table of the model's own columns (COPY,
written by psycopg's C row writer, on PostgreSQL; executemany on SQLite), then ONE
statement, the same text on both databases, inserts them into the model's table with
the conflict handling asked for. Column names, values and defaults all come from the
model (``_meta`` and each field's ``pre_save`` / ``get_db_prep_save``), as bulk_create
takes them; only the loading of the temporary table differs by database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connections, router, transaction
from django.db.models import (
    BooleanField,
    CharField,
    DateField,
    Field,
    ForeignKey,
    IntegerField,
    Model,
    TextField,
    UUIDField,
)
from django.utils import timezone


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete:
        raise ValueError(f"{model.__name__}.{name} is not a column.")
    return field


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    # Database-generated keys (AutoField) are left to the database, as bulk_create does.
    return [
        f for f in model._meta.concrete_fields if not getattr(f, "db_returning", False) and not f.generated
    ]


def bulk_write(
    model: type[Model],
    objs: Sequence[Model],
    *,
    ignore_conflicts: bool = False,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ``objs`` into ``model``'s table in one statement.

    ``update_fields`` (with ``unique_fields``, the conflict target): a row whose unique
    key is already there takes these fields' new values and keeps the rest (ON CONFLICT
    DO UPDATE); the caller passes each key once. ``ignore_conflicts``: a row that breaks
    any unique constraint is skipped (ON CONFLICT DO NOTHING). Neither: a duplicate key
    raises IntegrityError. Runs in one transaction (the caller's, if any).

    ``returning``: field names whose values, as the table holds them after the
    statement, come back for each row inserted or updated (in no particular order):
    the id an existing row kept, where bulk_create would leave the one set in Python."""
    if not objs:
        return []
    connection = connections[router.db_for_write(model)]
    fields = _insert_fields(model)
    # pre_save fills auto_now / auto_now_add as save() and bulk_create do.
    rows = ([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in objs)
    written = _write(
        model,
        rows,
        ignore_conflicts=ignore_conflicts,
        unique_fields=unique_fields,
        update_fields=update_fields,
        returning=returning,
    )
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return written


def bulk_write_values(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """``bulk_write`` for rows given as values, ``{attname: value}`` (``tenant_id``, not
    ``tenant``), without a model instance per row: at district scale building and
    preparing instances cost five times the database's own work (bench/roster.py).
    A field a row leaves out takes its default (a callable default is called per row,
    ``uuid4`` too); ``auto_now``/``auto_now_add`` fields take the time of the call, as
    bulk_create's pre_save does. Values are Python values of the field's type."""
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    fields = _insert_fields(model)
    now = timezone.now()
    filled: list[tuple[str, Any, bool]] = []  # (attname, value or factory, is factory)
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            filled.append(("", now, False))
        elif f.has_default() and callable(f.default):
            filled.append((f.attname, f.default, True))
        else:
            filled.append((f.attname, f.get_default(), False))
    # PostgreSQL: psycopg writes uuid, str, bool, date, datetime and numbers itself (as
    # the ORM would hand them over); other types (JSON, enums) go through the field.
    native = connection.vendor == "postgresql"
    prepared = [
        f
        for f in fields
        if not native
        or not isinstance(
            f, (UUIDField, CharField, TextField, BooleanField, DateField, IntegerField, ForeignKey)
        )
    ]

    def values(row: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, fill, factory in filled:
            if not name:
                out.append(fill)
            elif name in row:
                out.append(row[name])
            else:
                out.append(fill() if factory else fill)
        return out

    prepared_at = [(i, f) for i, f in enumerate(fields) if f in prepared]

    def ready(row: Mapping[str, Any]) -> list[Any]:
        out = values(row)
        for i, f in prepared_at:
            out[i] = f.get_db_prep_save(out[i], connection)
        return out

    return _write(
        model,
        (ready(row) for row in rows),
        ignore_conflicts=ignore_conflicts,
        unique_fields=unique_fields,
        update_fields=update_fields,
        returning=returning,
    )


def _write(
    model: type[Model],
    rows: Iterable[list[Any]],
    *,
    ignore_conflicts: bool,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """Load ``rows`` (values of the insert fields, in order, as the database takes them)
    into the staging table, then the one INSERT ... SELECT with the conflict handling."""
    if update_fields and not unique_fields:
        raise ValueError("update_fields needs unique_fields, the conflict target.")
    # The connection itself, not django.db.connection: that proxy looks the connection up
    # again on every attribute read, a million times in a district import.
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    opts = model._meta
    fields = _insert_fields(model)
    columns = ", ".join(quote(str(f.column)) for f in fields)
    table = quote(opts.db_table)
    staging = quote(f"bulk_write_{opts.db_table}")
    conflict = ""
    if update_fields:
        target = ", ".join(quote(str(_field(model, name).column)) for name in unique_fields)
        changes = ", ".join(
            f"{column} = EXCLUDED.{column}"
            for column in (quote(str(_field(model, n).column)) for n in update_fields)
        )
        conflict = f" ON CONFLICT ({target}) DO UPDATE SET {changes}"
    elif ignore_conflicts:
        conflict = " ON CONFLICT DO NOTHING"
    returned = [_field(model, name) for name in returning]
    if returned:
        conflict += " RETURNING " + ", ".join(quote(str(f.column)) for f in returned)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        _staging_load(cursor, staging, table, columns, len(fields), rows)
        # "WHERE TRUE": SQLite reads "ON CONFLICT" straight after a FROM as a join's ON.
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} WHERE TRUE{conflict}"
        )
        rows_back = cursor.fetchall() if returned else []
        cursor.execute(f"DELETE FROM {staging}")
    # As the ORM reads them (a UUID is a hex string on SQLite).
    return [tuple(f.to_python(v) for f, v in zip(returned, row, strict=True)) for row in rows_back]


def _staging_load(cursor: Any, staging: str, table: str, columns: str, width: int, rows: Any) -> None:
    """Create (once per connection) and fill the temporary table of ``table``'s columns."""
    if cursor.db.vendor == "postgresql":
        # Emptied at every commit, so nothing lingers between transactions; the DELETE in
        # bulk_write empties it between calls inside one.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS"
            f" AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} AS SELECT {columns} FROM {table} WHERE 0")
    marks = ", ".join(["%s"] * width)
    cursor.executemany(f"INSERT INTO {staging} ({columns}) VALUES ({marks})", rows)
