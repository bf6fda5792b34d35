"""Reused SQL text for the hot paths of ingestion and of fetching an idle mailbox.

peewee builds every statement anew from its expression tree, which costs far more than
SQLite takes to run it (about 0.2 ms against 0.02 ms for an INSERT); ingesting one message
runs several. ``insert`` lets peewee build the INSERT for a model once (so quoting, parameter
style and RETURNING are the engine's own), keeps the text, and then only converts the new
values with each field's own ``db_value``, exactly as ``Model.create`` would.
``tests/test_fastsql.py`` checks that both write the same row. ``execute`` keeps the text of
any other statement by its shape (what a fetch of an idle mailbox asks, channel by channel).

The kept text belongs to one database object and dies with it. (It used to be keyed on
``id()`` of the database: once that object was gone, a PostgreSQL database opened later in
the same process could get the same id and be handed SQLite's SQL.)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import peewee

from eddymail.db.connection import database_proxy

M = TypeVar("M", bound=peewee.Model)


@dataclass(frozen=True)
class _InsertPlan:
    """An INSERT of one model, once built: its SQL text and the columns in parameter order."""

    sql: str
    fields: tuple[peewee.Field, ...]
    names: frozenset[str]


@dataclass
class _Statements:
    """The SQL text prepared for one database: by model and by statement shape."""

    inserts: dict[tuple[type[peewee.Model], bool], _InsertPlan] = field(default_factory=dict)
    selects: dict[tuple[Any, ...], tuple[str, list[peewee.Field], list[Any]]] = field(
        default_factory=dict)
    updates: dict[tuple[Any, ...], tuple[str, list[peewee.Field]]] = field(
        default_factory=dict)
    statements: dict[Hashable, str] = field(default_factory=dict)


# Weak keys: an entry goes when its database object goes, so a database made later can
# never find another engine's SQL, whatever address it gets.
_BY_DATABASE: weakref.WeakKeyDictionary[peewee.Database, _Statements] = (
    weakref.WeakKeyDictionary())


def _statements(database: peewee.Database) -> _Statements:
    """The prepared SQL of ``database`` (the engine behind the proxy, not the proxy)."""
    engine = database.obj if isinstance(database, peewee.DatabaseProxy) else database
    statements = _BY_DATABASE.get(engine)
    if statements is None:
        statements = _BY_DATABASE[engine] = _Statements()
    return statements


def _primary_key(model: type[peewee.Model]) -> peewee.Field:
    key = model._meta.primary_key
    if not isinstance(key, peewee.Field):  # peewee says False for a table without one
        raise TypeError(f"{model.__name__} has no single-column primary key")
    return key


def create(model: type[M], **values: Any) -> M:
    """``model.create(**values)``, faster: insert one row and return it as an instance."""
    plan, row = _row(model, values, ignore_conflict=False)
    new_id = _new_id(model, _execute_insert(model, plan, row))
    instance = model(**dict(zip([field.name for field in plan.fields], row, strict=True)))
    setattr(instance, _primary_key(model).name, new_id)
    return instance


def insert(model: type[peewee.Model], **values: Any) -> int:
    """``create`` for a caller that needs only the new row's id (no instance is built)."""
    plan, row = _row(model, values, ignore_conflict=False)
    return _new_id(model, _execute_insert(model, plan, row))


def insert_new(model: type[peewee.Model], **values: Any) -> int | None:
    """Insert one row unless it would break a unique index; the new row's id, or None when
    such a row exists already (peewee's ``on_conflict_ignore()``: nothing is changed)."""
    plan, row = _row(model, values, ignore_conflict=True)
    cursor = _execute_insert(model, plan, row)
    if model._meta.database.returning_clause:  # PostgreSQL: RETURNING gives no row
        found = cursor.fetchone()
        return None if found is None else found[0]
    # SQLite's lastrowid would still name an earlier insert: the row count tells.
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _row(model: type[peewee.Model], values: dict[str, Any], *, ignore_conflict: bool
         ) -> tuple[_InsertPlan, list[Any]]:
    """The kept INSERT of ``model`` and every column's value (defaults filled in)."""
    database = model._meta.database
    inserts = _statements(database).inserts
    plan = inserts.get((model, ignore_conflict))
    if plan is None:
        plan = inserts[(model, ignore_conflict)] = _plan(model, ignore_conflict)
    if not plan.names.issuperset(values):
        unknown = set(values) - plan.names
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
    row = []
    for column in plan.fields:
        if column.name in values:
            row.append(values[column.name])
        else:
            default = column.default
            row.append(default() if callable(default) else default)
    return plan, row


def _plan(model: type[peewee.Model], ignore_conflict: bool) -> _InsertPlan:
    meta = model._meta
    fields = tuple(column for column in meta.sorted_fields if column is not meta.primary_key)
    # Built by peewee from placeholder values, so quoting, parameter style, RETURNING and
    # the conflict clause are the engine's own.
    query = model.insert({column: None for column in fields})
    if ignore_conflict:
        query = query.on_conflict_ignore()
    sql, _ = query.sql()
    return _InsertPlan(sql, fields, frozenset(column.name for column in fields))


def _execute_insert(model: type[peewee.Model], plan: _InsertPlan, row: list[Any]) -> Any:
    params = [column.db_value(value) for column, value in zip(plan.fields, row, strict=True)]
    return model._meta.database.execute_sql(plan.sql, params)


def _new_id(model: type[peewee.Model], cursor: Any) -> int:
    # PostgreSQL's INSERT (as peewee writes it) ends in RETURNING the new id; SQLite's does not.
    if model._meta.database.returning_clause:
        return cursor.fetchone()[0]
    return cursor.lastrowid


def first(model: type[M], *, columns: tuple[str, ...] | None = None, **equals: Any) -> M | None:
    """``model.select(columns).where(field == value, ...).first()``, with reused SQL text.

    A ``None`` value means ``IS NULL`` (it takes no parameter, so it is part of the shape).
    """
    meta = model._meta
    database = meta.database
    selected = [meta.fields[name] for name in columns] if columns else list(meta.sorted_fields)
    conditions = [(meta.fields[name], value) for name, value in equals.items()]
    key = (model, tuple(f.name for f in selected),
           tuple((field.name, value is None) for field, value in conditions))
    selects = _statements(database).selects
    prepared = selects.get(key)
    if prepared is None:
        where = [field.is_null() if value is None else field == value
                 for field, value in conditions]
        query = model.select(*selected).where(*where).limit(1)
        sql, built = query.sql()
        bound = sum(value is not None for _, value in conditions)
        # What follows the conditions' parameters (the LIMIT) is the same every time.
        prepared = selects[key] = (sql, selected, list(built[bound:]))
    sql, fields, tail = prepared
    params = [field.db_value(value) for field, value in conditions if value is not None] + tail
    row = database.execute_sql(sql, params).fetchone()
    if row is None:
        return None
    return model(**{field.name: field.python_value(value) for field, value in zip(fields, row,
                                                                                    strict=True)})


def update(model: type[peewee.Model], row_id: int, **values: Any) -> None:
    """``model.update(**values).where(model.id == row_id).execute()``, with reused SQL text."""
    meta = model._meta
    database = meta.database
    primary_key = _primary_key(model)
    key = (model, tuple(sorted(values)))
    updates = _statements(database).updates
    prepared = updates.get(key)
    if prepared is None:
        unknown = set(values) - set(meta.fields)
        if unknown:
            raise KeyError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
        # peewee writes SET columns in field order (``sorted_fields``); the parameters must
        # follow the same order.
        fields = [field for field in meta.sorted_fields if field.name in values]
        query = model.update({field: values[field.name] for field in fields}).where(
            primary_key == row_id)
        prepared = updates[key] = (query.sql()[0], fields)
    sql, order = prepared
    params = [field.db_value(values[field.name]) for field in order]
    params.append(primary_key.db_value(row_id))
    database.execute_sql(sql, params)


def execute(shape: Hashable, build: Callable[[], peewee.Query], params: Sequence[Any]) -> Any:
    """Run the statement ``build()`` makes, built only once per database and ``shape``; the
    DB-API cursor (``fetchall()``, ``rowcount``).

    ``params`` are the statement's parameters in the order peewee writes them, as the
    database gets them (``db_value`` applied: ids, not rows). The first call of a shape
    builds the query and checks that peewee wrote exactly these; later calls only run the
    kept SQL with theirs. ``shape`` names everything that changes the SQL text (a value
    that becomes ``IS NULL``, a condition left out) and the module that owns the statement.
    """
    database = database_proxy.obj
    kept = _statements(database).statements
    sql = kept.get(shape)
    if sql is None:
        sql, built = build().sql()
        if list(built) != list(params):
            raise TypeError(f"the parameters of {shape!r} are {built!r}, not {params!r}")
        kept[shape] = sql
    return database.execute_sql(sql, list(params))
