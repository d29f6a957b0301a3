"""Model instances from the rows of a written-out statement.

Hot paths (the workflow's row locks, the automatic checks) read several related rows in one
statement written once per process instead of compiling an ORM query each call. ``Columns``
names a model's concrete columns under a table alias, in the order ``Model.from_db`` reads
them, and builds the instance from its slice of a row with the fields' database converters
applied, as the ORM would (none of the models read so far has any)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model


class Columns:
    def __init__(self, model: type[Model], alias: str, using: str = DEFAULT_DB_ALIAS):
        connection = connections[using]
        fields = model._meta.concrete_fields
        self.model = model
        self.using = using
        self.attnames = [f.attname for f in fields]
        self.pk_index = self.attnames.index(model._meta.pk.attname)
        self.sql = ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)
        self.converters = []
        for index, f in enumerate(fields):
            column = f.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(column) + f.get_db_converters(connection)
            if found:
                self.converters.append((index, column, found))
        self.connection = connection

    def __len__(self) -> int:
        return len(self.attnames)

    def load_or_none(self, values: Sequence) -> Model | None:
        """None for the columns of an outer join that matched nothing."""
        return None if values[self.pk_index] is None else self.load(values)

    def load(self, values: Sequence) -> Model:
        if self.converters:
            values = list(values)
            for index, column, converters in self.converters:
                for converter in converters:
                    values[index] = converter(values[index], column, self.connection)
        return self.model.from_db(self.using, self.attnames, values)


@functools.cache
def _insert_statement(shape: tuple[tuple[type[Model], int], ...], using: str) -> tuple[str, tuple]:
    connection = connections[using]
    quote = connection.ops.quote_name
    ctes, fields_of = [], []
    for n, (model, rows) in enumerate(shape):
        fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
        fields_of.append(fields)
        columns = ", ".join(quote(f.column) for f in fields)
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        ctes.append(
            f"i{n} AS (INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608 (names from the models)
            f"VALUES {', '.join([row] * rows)} RETURNING {quote(model._meta.pk.column)})"
        )
    if len(shape) == 1:
        # One table: a plain INSERT, which reads as bulk_create's in the server's activity.
        return ctes[0].removeprefix("i0 AS (").removesuffix(")"), tuple(fields_of)
    returned = ", ".join(f"ARRAY(SELECT * FROM i{n})" for n in range(len(shape)))  # noqa: S608
    return f"WITH {', '.join(ctes)} SELECT {returned}", tuple(fields_of)


def insert_together(*groups: Sequence[Model], using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert new instances in one statement, setting their primary keys: each group (rows of
    one model, in their order, as ``bulk_create`` inserts them) is its own data-modifying
    ``WITH`` part; the values are prepared as ``save()`` prepares them. For models without
    save signals or an overridden ``save()``, whose groups need no order among themselves."""
    groups = [list(group) for group in groups if group]
    shape = tuple((type(group[0]), len(group)) for group in groups)
    sql, fields_of = _insert_statement(shape, using)
    connection = connections[using]
    params = [
        value
        for group, fields in zip(groups, fields_of, strict=True)
        for obj in group
        for value in _prepared(obj, fields, connection, add=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = [[pk for (pk,) in cursor.fetchall()]] if len(groups) == 1 else cursor.fetchone()
    for group, pks in zip(groups, returned, strict=True):
        for obj, pk in zip(group, pks, strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = using


def _prepared(obj: Model, fields, connection, *, add: bool) -> list:
    values = []
    for f in fields:
        value = f.get_db_prep_save(f.pre_save(obj, add), connection=connection)
        if hasattr(value, "as_sql"):
            raise ValueError(f"{f} has an expression as its value: use the ORM.")
        values.append(value)
    return values


@functools.cache
def _update_statement(model: type[Model], names: tuple[str, ...], using: str) -> tuple[str, list]:
    quote = connections[using].ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    sql = (
        f"UPDATE {quote(model._meta.db_table)} "  # noqa: S608 (names from the models)
        f"SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
        f"WHERE {quote(model._meta.pk.column)} = %s"
    )
    return sql, fields


def save_fields(obj: Model, names: Sequence[str], using: str = DEFAULT_DB_ALIAS) -> None:
    """``obj.save(update_fields=names)`` from a statement written once per model and field
    list: the values prepared as ``save()`` prepares them, and an error when no row was
    updated, as ``save()`` raises."""
    connection = connections[using]
    unique = tuple(dict.fromkeys(names))
    sql, fields = _update_statement(type(obj), unique, using)
    params = [*_prepared(obj, fields, connection, add=False), obj.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not cursor.rowcount:
            raise DatabaseError("Save with update_fields did not affect any rows.")
