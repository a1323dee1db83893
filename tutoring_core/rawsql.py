"""Model instances from hand-written SELECTs, for the three reads of an LTI launch.

Kept after issue 13 weighed it against the ORM, because bench/lti_launch.py showed a
difference: the ORM builds every query anew, and for these three joins that cost more
CPU than PostgreSQL spent answering them. Measured (tests of the same rows, best of
3 x 400 calls, PostgreSQL): lti_tool.selectors.launch_rows 0.48 ms here against
2.50 ms through the ORM (FilteredRelation joins), registration_for_login 0.49 against
1.27 ms, classes.api.person_class_current 0.43 against 3.38 ms (a Subquery
annotation): 5.8 ms more CPU per launch round trip, on a launch that costs about
10 ms in all; bench/lti_launch.py's server CPU per launch went from 9.6-11.5 ms to
15.6-18.1 ms with the ORM versions, and launches per second fell with it.

A read written here has its SQL built once, with table and column names taken from
the models (so a renamed field cannot drift), and this module turns the row back
into model instances the way the ORM would: the same database converters (UUIDs and
datetimes on SQLite, JSON, encrypted fields) and ``Model.from_db``, so the instances
behave like loaded ones (``save``, ``refresh_from_db``, descriptors).

Only for those reads, whose shape is fixed and whose query list
tests/lti_tool/test_launch.py pins; anything else uses the ORM (writes included: the
audit row and the session store that used to write through here are ORM and Django's
cache session engine now).
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
