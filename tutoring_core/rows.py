"""Writing back only what changed: the one way the project updates a loaded row.

``save_changed(row, values)`` sets each value that differs from the row's and saves
just those columns (``save(update_fields=...)``, plus ``updated_at`` when the model
has one), so two writers updating different columns of the same row do not undo
each other, and an unchanged row costs no query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Model


def set_changed(row: Model, values: Mapping[str, Any]) -> list[str]:
    """Set each of ``values`` that differs from ``row``'s; the names of those that did
    (nothing is saved: for callers that write in bulk, or decide afterwards)."""
    changed = []
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


def save_fields(row: Model, names: Iterable[str]) -> None:
    """One UPDATE of ``names`` (and ``updated_at`` when the model has it); none when
    ``names`` is empty."""
    fields = list(dict.fromkeys(names))
    if not fields:
        return
    if "updated_at" not in fields and any(f.name == "updated_at" for f in row._meta.concrete_fields):
        fields.append("updated_at")
    row.save(update_fields=fields)


def save_changed(row: Model, values: Mapping[str, Any], *, touch: Iterable[str] = ()) -> list[str]:
    """``set_changed``, then ``save_fields`` of what changed. ``touch``: names set by
    the caller that are saved with the changes, or alone (a last-seen time), even
    when nothing in ``values`` changed. Returns the names from ``values`` that changed."""
    changed = set_changed(row, values)
    save_fields(row, [*changed, *touch])
    return changed
