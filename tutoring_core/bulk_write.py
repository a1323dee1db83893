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
the conflict handling asked for. A plain insert (no conflict handling, nothing read
back) loads the rows straight into the model's table the same way. Column names,
values and defaults all come from the model (``_meta`` and each field's ``pre_save`` /
``get_db_prep_save``), as bulk_create takes them; only the loading differs by database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    same_tenant: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ``objs`` into ``model``'s table in one statement.

    ``update_fields`` (with ``unique_fields``, the conflict target): a row whose unique
    key is already there takes these fields' new values and keeps the rest (ON CONFLICT
    DO UPDATE); the caller passes each key once. ``ignore_conflicts``: a row that breaks
    any unique constraint is skipped (ON CONFLICT DO NOTHING). Neither: a duplicate key
    raises IntegrityError. Runs in one transaction (the caller's, if any).

    ``returning``: field names whose values, as the table holds them after the
    statement, come back for each row inserted or updated (in no particular order):
    the id an existing row kept, where bulk_create would leave the one set in Python.

    ``same_tenant``: foreign keys whose row must belong to the written row's tenant
    (both models have a ``tenant``). The check is part of the one statement (a join
    per key, the index lookups the foreign key's own check makes anyway): when a row
    names another tenant's row, nothing is written and ForeignTenantRows is raised.
    Not with ``ignore_conflicts``, whose skipped rows the check could not tell apart."""
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
        same_tenant=same_tenant,
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
    same_tenant: Sequence[str] = (),
    kept_ids: bool = False,
) -> list[tuple[Any, ...]]:
    """``bulk_write`` for rows given as values, ``{attname: value}`` (``tenant_id``, not
    ``tenant``), without a model instance per row: at district scale building and
    preparing instances cost five times the database's own work (bench/roster.py).
    A field a row leaves out takes its default (a callable default is called per row,
    ``uuid4`` too); ``auto_now``/``auto_now_add`` fields take the time of the call, as
    bulk_create's pre_save does. Values are Python values of the field's type.

    ``kept_ids`` (with ``update_fields``; every row gives its primary key, and the
    ``unique_fields`` are NOT NULL): instead of ``returning``, the pairs (primary key in
    the table, primary key the row gave) for the rows whose unique key was already there
    under another key; every other row is in the table under the key it gave. A
    district import inserts nearly every row: RETURNING every key with its unique
    fields was a tenth of its time (one UUID object per value read back,
    bench/roster.py); this reads back the primary key alone, and looks further only
    when one of them is not a key a row gave."""
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    fields = _insert_fields(model)
    now = timezone.now()
    # Per field: the key a row gives it under and the value when the row does not.
    # auto_now fields take no value from the row (the key "" names no field).
    defaults: list[tuple[str, Any]] = []
    factories: list[tuple[int, str, Any]] = []  # callable defaults, called per row
    for i, f in enumerate(fields):
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults.append(("", now))
        elif f.has_default() and callable(f.default):
            defaults.append((f.attname, None))
            factories.append((i, f.attname, f.default))
        else:
            defaults.append((f.attname, f.get_default()))
    # PostgreSQL: psycopg writes uuid, str, bool, date, datetime and numbers itself (as
    # the ORM would hand them over); other types (JSON, enums) go through the field.
    prepared = [(i, f) for i, f in enumerate(fields) if not _native(f, connection)]

    def ready(row: Mapping[str, Any]) -> list[Any]:
        out = [row.get(name, default) for name, default in defaults]
        for i, name, factory in factories:
            if name not in row:
                out[i] = factory()
        for i, f in prepared:
            out[i] = f.get_db_prep_save(out[i], connection)
        return out

    return _write(
        model,
        (ready(row) for row in rows),
        ignore_conflicts=ignore_conflicts,
        unique_fields=unique_fields,
        update_fields=update_fields,
        returning=returning,
        same_tenant=same_tenant,
        kept_ids=kept_ids,
    )


_NATIVE_TYPES = (UUIDField, CharField, TextField, BooleanField, DateField, IntegerField, ForeignKey)


def _native(field: Field[Any, Any], connection: Any) -> bool:
    """Whether psycopg takes and gives this field's Python values as they are (on
    PostgreSQL; SQLite needs every value through the field: a UUID is hex text)."""
    return connection.vendor == "postgresql" and isinstance(field, _NATIVE_TYPES)


class ForeignTenantRows(ValueError):
    """A row named another tenant's row in a ``same_tenant`` key; nothing was written."""


def _write(
    model: type[Model],
    rows: Iterable[Sequence[Any]],
    *,
    ignore_conflicts: bool,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
    returning: Sequence[str],
    same_tenant: Sequence[str] = (),
    kept_ids: bool = False,
) -> list[tuple[Any, ...]]:
    """Load ``rows`` (values of the insert fields, in order, as the database takes them)
    into the staging table, then the one INSERT ... SELECT with the conflict handling."""
    if update_fields and not unique_fields:
        raise ValueError("update_fields needs unique_fields, the conflict target.")
    if same_tenant and ignore_conflicts:
        raise ValueError("same_tenant cannot be checked on rows that ignore_conflicts may skip.")
    if kept_ids and (returning or not update_fields):
        raise ValueError("kept_ids is for update_fields upserts, instead of returning.")
    # The connection itself, not django.db.connection: that proxy looks the connection up
    # again on every attribute read, a million times in a district import.
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    opts = model._meta
    fields = _insert_fields(model)
    columns = ", ".join(quote(str(f.column)) for f in fields)
    table = quote(opts.db_table)
    staging = quote(f"bulk_write_{opts.db_table}")
    source = ", ".join(f"s.{quote(str(f.column))}" for f in fields)
    joins = "".join(_same_tenant_join(model, name, f"t{n}", quote) for n, name in enumerate(same_tenant))
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
    sent: set[Any] = set()
    if kept_ids:
        # The primary keys as the rows give them, and as the table holds them after
        # the upsert: when every key read back is one that was sent, no row was there
        # before, and the join below (a scan per chunk) is not needed.
        conflict += f" RETURNING {quote(str(opts.pk.column))}"
        at = fields.index(opts.pk)  # type: ignore[arg-type]
        rows = _tap(rows, at, sent)
    if not (conflict or joins or kept_ids):
        # A plain insert: the rows go straight into the table (a duplicate key raises
        # IntegrityError and the transaction writes nothing, as bulk_create). Half the
        # server's work of going through the staging table (the roster mapping's first
        # import, new people and identities: bench/roster.py).
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            _load(cursor, table, columns, len(fields), rows)
        return []
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        loaded = _staging_load(cursor, staging, table, columns, len(fields), rows)
        # "WHERE TRUE": SQLite reads "ON CONFLICT" straight after a FROM or a join's
        # condition as part of that join.
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {source} FROM {staging} s{joins} WHERE TRUE{conflict}"
        )
        rows_back = cursor.fetchall() if returned or kept_ids else []
        # Every row is inserted or (update_fields) updated, or the join dropped it.
        written = len(rows_back) if returned or kept_ids else cursor.rowcount
        if kept_ids and all(row[0] in sent for row in rows_back):
            rows_back = []
        elif kept_ids:
            pk = quote(str(opts.pk.column))
            same_key = " AND ".join(
                f"t.{column} = s.{column}"
                for column in (quote(str(_field(model, name).column)) for name in unique_fields)
            )
            cursor.execute(
                f"SELECT t.{pk}, s.{pk} FROM {table} t JOIN {staging} s ON {same_key} WHERE t.{pk} <> s.{pk}"
            )
            returned = [opts.pk, opts.pk]  # type: ignore[list-item]
            rows_back = cursor.fetchall()
        cursor.execute(f"DELETE FROM {staging}")
        if same_tenant and written != loaded:
            raise ForeignTenantRows(
                f"Every {opts.verbose_name}'s {', '.join(same_tenant)} must belong to its tenant."
            )
    if all(_native(f, connection) for f in returned):
        return [tuple(row) for row in rows_back]
    # As the ORM reads them (a UUID is a hex string on SQLite).
    return [tuple(f.to_python(v) for f, v in zip(returned, row, strict=True)) for row in rows_back]


def _tap(rows: Iterable[Sequence[Any]], at: int, into: set[Any]) -> Iterator[Sequence[Any]]:
    """``rows`` as they are, adding each row's value at ``at`` to ``into``."""
    for row in rows:
        into.add(row[at])
        yield row


def _same_tenant_join(model: type[Model], name: str, alias: str, quote: Any) -> str:
    """JOIN the row ``name`` references on its key and on the written row's tenant."""
    key = _field(model, name)
    related = key.related_model
    if related is None or not isinstance(key, ForeignKey):
        raise ValueError(f"{model.__name__}.{name} is not a foreign key.")
    tenant_column = quote(str(_field(model, "tenant").column))
    related_tenant = quote(str(_field(related, "tenant").column))  # type: ignore[arg-type]
    return (
        f" JOIN {quote(related._meta.db_table)} {alias}"  # type: ignore[union-attr]
        f" ON {alias}.{quote(str(key.target_field.column))} = s.{quote(str(key.column))}"
        f" AND {alias}.{related_tenant} = s.{tenant_column}"
    )


def _staging_load(cursor: Any, staging: str, table: str, columns: str, width: int, rows: Any) -> int:
    """Create (once per connection) and fill the temporary table of ``table``'s columns;
    the number of rows loaded."""
    if cursor.db.vendor == "postgresql":
        # Emptied at every commit, so nothing lingers between transactions; the DELETE in
        # bulk_write empties it between calls inside one.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS"
            f" AS SELECT {columns} FROM {table} WITH NO DATA"
        )
    else:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} AS SELECT {columns} FROM {table} WHERE 0"
        )
    return _load(cursor, staging, columns, width, rows)


def _load(cursor: Any, target: str, columns: str, width: int, rows: Any) -> int:
    """Insert ``rows`` into ``target``: COPY on PostgreSQL (psycopg's C row writer),
    executemany on SQLite. The number of rows."""
    loaded = 0
    if cursor.db.vendor == "postgresql":
        # The raw COPY bypasses Django's cursor: wrap its errors as execute() would (a
        # duplicate key is django.db.IntegrityError, not psycopg's own).
        with (
            cursor.db.wrap_database_errors,
            cursor.cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy,
        ):
            write = copy.write_row
            for row in rows:
                write(row)
                loaded += 1
        return loaded
    marks = ", ".join(["%s"] * width)
    batch = list(rows)
    cursor.executemany(f"INSERT INTO {target} ({columns}) VALUES ({marks})", batch)
    return len(batch)


# A table smaller than this (in pages of 8 kB) is read whole whatever its statistics say.
_STATISTICS_FLOOR_PAGES = 8


def statistics_refresh_grown(models: Sequence[type[Model]]) -> list[str]:
    """ANALYZE (PostgreSQL) each of these models' tables that has at least doubled in
    pages since its statistics were last taken; the tables analyzed.

    While a bulk import fills tables, statistics that still say "empty" make the planner
    scan whole tables for each chunk's lookups. Between refreshes PostgreSQL scales its
    row estimates by the table's current size, so a table needs new statistics only when
    it has outgrown them, not whenever some other table grew: analyzing every roster
    table at every doubling of the import's row count was 2 to 6 seconds of a size-L
    import (bench/roster.py), spent mostly on tables the current pass does not write.
    On a large multi-tenant database one district's import rarely doubles a table, and
    nothing is analyzed. Nothing to do on SQLite, whose planner keeps no statistics
    unless asked."""
    if not models:
        return []
    connection = connections[router.db_for_write(models[0])]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.oid = ANY(%s::regclass[])"
            " AND pg_relation_size(c.oid) / current_setting('block_size')::int"
            " >= 2 * GREATEST(c.relpages, %s) ORDER BY c.relname",
            [[str(m._meta.db_table) for m in models], _STATISTICS_FLOOR_PAGES],
        )
        grown = [str(name) for (name,) in cursor.fetchall()]
        for name in grown:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
    return grown
