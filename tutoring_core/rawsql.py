"""Model instances from hand-written SELECTs, for the few reads on hot paths.

The ORM builds every query anew: on a repeat LTI launch, compiling the four
small SELECTs cost more CPU than PostgreSQL spent running them (about 1 ms each
against a tenth of that). A hot read writes its SQL once, with the table and
column names taken from the models (so a renamed field cannot drift), and this
module turns the row back into model instances the way the ORM would: the same
database converters (UUIDs and datetimes on SQLite, JSON, encrypted fields) and
``Model.from_db``, so the instances behave like loaded ones (``save``,
``refresh_from_db``, descriptors).

Only for reads whose shape is fixed and whose query count a test pins; anything
else uses the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model

Converter = Callable[[Any, Any, Any], Any]


def table(model: type[Model]) -> str:
    """The model's table name, quoted for the database."""
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)


def column(model: type[Model], field_name: str) -> str:
    """A field's column name, quoted."""
    field = model._meta.get_field(field_name)
    assert isinstance(field, Field) and field.column is not None
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(field.column)


def param(model: type[Model], field_name: str, value: Any) -> Any:
    """``value`` as the database takes it for this field (a UUID is a hex string on
    SQLite, a uuid on PostgreSQL; a foreign key takes its target's form)."""
    field = model._meta.get_field(field_name)
    return field.get_db_prep_value(value, connections[DEFAULT_DB_ALIAS], prepared=False)  # type: ignore[union-attr]


class RowReader:
    """Reads instances of several models out of one row: each model's concrete
    columns in field order, under the alias given. ``columns()`` is the SELECT
    list; ``read(row)`` gives one instance per model, or None where a LEFT JOIN
    found nothing (its primary key is NULL)."""

    def __init__(self, *parts: tuple[type[Model], str]) -> None:
        self.parts = parts
        self._fields: list[tuple[type[Model], list[Field[Any, Any]]]] = [
            (model, list(model._meta.concrete_fields)) for model, _alias in parts
        ]
        self._attnames = [[field.attname for field in fields] for _model, fields in self._fields]
        self._pk_index = [
            next(i for i, field in enumerate(fields) if field.primary_key) for _model, fields in self._fields
        ]
        # Per field: (index, converter, column expression) for the fields that have any.
        self._converters: list[list[tuple[int, Converter, Any]]] | None = None

    def columns(self) -> str:
        quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
        return ", ".join(
            f"{alias}.{quote(field.column or field.attname)}"
            for (_model, alias), (_m, fields) in zip(self.parts, self._fields, strict=True)
            for field in fields
        )

    def _converters_for(self, connection: Any) -> list[list[tuple[int, Converter, Any]]]:
        # What SQLCompiler.get_converters applies: the backend's converters for the
        # column's type, then the field's own (from_db_value).
        if self._converters is None:
            converters = []
            for (_model, alias), (_m, fields) in zip(self.parts, self._fields, strict=True):
                mine = []
                for i, field in enumerate(fields):
                    col = field.get_col(alias)
                    for converter in connection.ops.get_db_converters(col) + col.get_db_converters(
                        connection
                    ):
                        mine.append((i, converter, col))
                converters.append(mine)
            self._converters = converters
        return self._converters

    def read(self, row: Sequence[Any]) -> list[Any]:
        connection = connections[DEFAULT_DB_ALIAS]
        instances: list[Any] = []
        offset = 0
        for n, (model, fields) in enumerate(self._fields):
            values = list(row[offset : offset + len(fields)])
            offset += len(fields)
            if values[self._pk_index[n]] is None:
                instances.append(None)
                continue
            for i, converter, col in self._converters_for(connection)[n]:
                values[i] = converter(values[i], col, connection)
            instances.append(model.from_db(DEFAULT_DB_ALIAS, self._attnames[n], values))
        return instances

    def fetch_one(self, sql: str, params: Sequence[Any]) -> list[Any] | None:
        """Run ``sql`` (which selects ``columns()`` first) and read its first row."""
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else self.read(row)


def insert(obj: Model, *, skip_taken_key: bool = False, using: str = DEFAULT_DB_ALIAS) -> bool:
    """INSERT ``obj`` as ``obj.save()`` would for a new row with no signal receivers:
    auto_now(_add) filled (``pre_save``), values prepared by each field, an auto
    primary key read back. For rows written on hot paths (the audit log and the
    session of every sign-in); the model must not rely on save() or save signals.

    ``skip_taken_key``: ON CONFLICT DO NOTHING, and False (nothing written) when a
    unique key is taken. A failed INSERT would abort the caller's transaction on
    PostgreSQL; this way needs no savepoint (two round trips) around it."""
    connection = connections[using]
    meta = obj._meta
    auto_pk = meta.pk if meta.pk is not None and meta.pk.get_default() is None and obj.pk is None else None
    fields = [field for field in meta.concrete_fields if field is not auto_pk]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column or f.attname) for f in fields)})"  # noqa: S608 - names from the model
        f" VALUES ({', '.join(['%s'] * len(fields))})" + (" ON CONFLICT DO NOTHING" if skip_taken_key else "")
    )
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        if auto_pk is not None and connection.features.can_return_columns_from_insert:
            cursor.execute(sql + f" RETURNING {quote(auto_pk.column or auto_pk.attname)}", params)
            returned = cursor.fetchone()
            if returned is None:  # the key was taken (skip_taken_key)
                return False
            obj.pk = returned[0]
        else:
            cursor.execute(sql, params)
            if cursor.rowcount != 1:
                return False
            if auto_pk is not None:
                obj.pk = connection.ops.last_insert_id(
                    cursor, meta.db_table, auto_pk.column or auto_pk.attname
                )
    obj._state.adding = False
    obj._state.db = using
    return True


def delete(model: type[Model], field_name: str, value: Any, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """DELETE the rows whose ``field_name`` is ``value``, in one statement (no
    collector: for tables no other row points to, such as sessions). Returns the count."""
    connection = connections[using]
    quote = connection.ops.quote_name
    field = model._meta.get_field(field_name)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {quote(model._meta.db_table)} WHERE {column(model, field_name)} = %s",  # noqa: S608 - names from the model
            [field.get_db_prep_value(value, connection, prepared=False)],  # type: ignore[union-attr]
        )
        return int(cursor.rowcount)
