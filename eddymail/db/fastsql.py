"""Reused SQL text for the hot path of ingestion.

peewee builds every statement anew from its expression tree, which costs far more than
SQLite takes to run it (about 0.2 ms against 0.02 ms for an INSERT); ingesting one message
runs several. ``insert`` lets peewee build the INSERT for a model once (so quoting, parameter
style and RETURNING are the engine's own), keeps the text, and then only converts the new
values with each field's own ``db_value``, exactly as ``Model.create`` would.
``tests/test_fastsql.py`` checks that both write the same row.
"""

from __future__ import annotations

from typing import Any, TypeVar

import peewee

M = TypeVar("M", bound=peewee.Model)

_INSERTS: dict[tuple[type[peewee.Model], int], tuple[str, list[peewee.Field]]] = {}


def create(model: type[M], **values: Any) -> M:
    """``model.create(**values)``, faster: insert one row and return it as an instance."""
    row, new_id = _insert(model, values)
    return model(**{field.name: value for field, value in row.items()},
                 **{model._meta.primary_key.name: new_id})


def _insert(model: type[peewee.Model], values: dict[str, Any]) -> tuple[dict, int]:
    meta = model._meta
    database = meta.database
    fields = [field for field in meta.sorted_fields if field is not meta.primary_key]
    unknown = set(values) - {field.name for field in fields}
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
    row = {field: _value(field, values) for field in fields}
    key = (model, id(database.obj))
    prepared = _INSERTS.get(key)
    if prepared is None:
        sql, _ = model.insert(row).sql()
        prepared = _INSERTS[key] = (sql, fields)
    sql, order = prepared
    params = [field.db_value(row[field]) for field in order]
    cursor = database.execute_sql(sql, params)
    # PostgreSQL's INSERT (as peewee writes it) ends in RETURNING the new id; SQLite's does not.
    new_id = cursor.fetchone()[0] if database.returning_clause else cursor.lastrowid
    return row, new_id


def _value(field: peewee.Field, values: dict[str, Any]) -> Any:
    if field.name in values:
        return values[field.name]
    default = field.default
    return default() if callable(default) else default


_SELECTS: dict[tuple, tuple[str, list[peewee.Field], list[Any]]] = {}


def first(model: type[M], *, columns: tuple[str, ...] | None = None, **equals: Any) -> M | None:
    """``model.select(columns).where(field == value, ...).first()``, with reused SQL text.

    A ``None`` value means ``IS NULL`` (it takes no parameter, so it is part of the shape).
    """
    meta = model._meta
    database = meta.database
    selected = [meta.fields[name] for name in columns] if columns else list(meta.sorted_fields)
    conditions = [(meta.fields[name], value) for name, value in equals.items()]
    key = (model, id(database.obj), tuple(f.name for f in selected),
           tuple((field.name, value is None) for field, value in conditions))
    prepared = _SELECTS.get(key)
    if prepared is None:
        where = [field.is_null() if value is None else field == value
                 for field, value in conditions]
        query = model.select(*selected).where(*where).limit(1)
        sql, built = query.sql()
        bound = sum(value is not None for _, value in conditions)
        # What follows the conditions' parameters (the LIMIT) is the same every time.
        prepared = _SELECTS[key] = (sql, selected, list(built[bound:]))
    sql, fields, tail = prepared
    params = [field.db_value(value) for field, value in conditions if value is not None] + tail
    row = database.execute_sql(sql, params).fetchone()
    if row is None:
        return None
    return model(**{field.name: field.python_value(value) for field, value in zip(fields, row,
                                                                                    strict=True)})


_UPDATES: dict[tuple, tuple[str, list[peewee.Field]]] = {}


def update(model: type[peewee.Model], row_id: int, **values: Any) -> None:
    """``model.update(**values).where(model.id == row_id).execute()``, with reused SQL text."""
    meta = model._meta
    database = meta.database
    # peewee writes SET columns in field order; the parameters must follow the same order.
    fields = sorted((meta.fields[name] for name in values), key=lambda field: field._sort_key)
    key = (model, id(database.obj), tuple(field.name for field in fields))
    prepared = _UPDATES.get(key)
    if prepared is None:
        query = model.update({field: values[field.name] for field in fields}).where(
            meta.primary_key == row_id)
        prepared = _UPDATES[key] = (query.sql()[0], fields)
    sql, order = prepared
    params = [field.db_value(values[field.name]) for field in order]
    params.append(meta.primary_key.db_value(row_id))
    database.execute_sql(sql, params)
