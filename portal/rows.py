"""Model instances from the rows of a written-out statement.

Hot paths (the workflow's row locks, the automatic checks) read several related rows in one
statement written once per process instead of compiling an ORM query each call. ``Columns``
names a model's concrete columns under a table alias, in the order ``Model.from_db`` reads
them, and builds the instance from its slice of a row with the fields' database converters
applied, as the ORM would (none of the models read so far has any)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connections
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
def _insert_statement(models: tuple[type[Model], ...], using: str) -> tuple[str, tuple]:
    connection = connections[using]
    quote = connection.ops.quote_name
    ctes, fields_of = [], []
    for n, model in enumerate(models):
        fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
        fields_of.append(fields)
        columns = ", ".join(quote(f.column) for f in fields)
        values = ", ".join(["%s"] * len(fields))
        ctes.append(
            f"i{n} AS (INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608 (names from the models)
            f"VALUES ({values}) RETURNING {quote(model._meta.pk.column)})"
        )
    returned = ", ".join(f"(SELECT * FROM i{n})" for n in range(len(models)))  # noqa: S608
    return f"WITH {', '.join(ctes)} SELECT {returned}", tuple(fields_of)


def insert_together(*objs: Model, using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert new instances of different models in one statement (each its own data-modifying
    ``WITH`` part), setting their primary keys: the values are prepared as ``save()`` prepares
    them. For rows written together whose order among themselves does not matter, and models
    without save signals or overridden ``save()``."""
    sql, fields_of = _insert_statement(tuple(type(obj) for obj in objs), using)
    connection = connections[using]
    params = []
    for obj, fields in zip(objs, fields_of, strict=True):
        for f in fields:
            value = f.get_db_prep_save(f.pre_save(obj, True), connection=connection)
            if hasattr(value, "as_sql"):
                raise ValueError(f"{f} has an expression as its value: save() the instance.")
            params.append(value)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = cursor.fetchone()
    for obj, pk in zip(objs, pks, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = using
