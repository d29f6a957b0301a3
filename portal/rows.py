"""Model instances from the rows of a written-out statement.

Hot paths (the workflow's row locks, the automatic checks) read several related rows in one
statement written once per process instead of compiling an ORM query each call. ``Columns``
names a model's concrete columns under a table alias, in the order ``Model.from_db`` reads
them, and builds the instance from its slice of a row with the fields' database converters
applied, as the ORM would (none of the models read so far has any).

``insert_together`` and ``save_fields`` write rows from statements written once per shape and
prepared once per connection (``portal.prepared``). They prepare each value as ``save()`` does,
except that a field whose ``get_db_prep_save`` is provably the identity for a value's exact
plain type (``_PLAIN``: str, bool, int, aware datetime, and None, on Django's own field classes
and PostgreSQL operations) takes the value as it is (integers in psycopg's sized integer, as
Django wraps them): that prep was about half their CPU. Anything else (Decimal, JSON, dates,
addresses, enum members, lazy text, naive datetimes, subclassed fields) goes through the field."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models
from django.db.models import DateField, DateTimeField, Field, ForeignKey, Model

from portal.prepared import prepared_cursor


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
        fields_of.append(_spec(fields, connection))
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
    sql, specs = _insert_statement(shape, using)
    connection = connections[using]
    params = [
        value
        for group, spec in zip(groups, specs, strict=True)
        for obj in group
        for value in _prepared(obj, spec, connection, add=True)
    ]
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        returned = [[pk for (pk,) in cursor.fetchall()]] if len(groups) == 1 else cursor.fetchone()
    for group, pks in zip(groups, returned, strict=True):
        for obj, pk in zip(group, pks, strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = using


def _prepared(obj: Model, spec: tuple, connection, *, add: bool) -> list:
    values = []
    for attname, pre_save, plain, wrap, prep in spec:
        value = getattr(obj, attname) if pre_save is None else pre_save(obj, add)
        if value is not None and type(value) is plain:
            # What the field's prep makes of its plain type: the value itself (wrapped for
            # integer columns), an aware datetime unchanged; a naive one goes through prep.
            if wrap is not None:
                value = wrap(value)
            elif plain is datetime and value.utcoffset() is None:
                value = prep(value, connection)
        elif value is not None or plain is None:
            value = prep(value, connection)
            if hasattr(value, "as_sql"):
                raise ValueError(f"{attname} has an expression as its value: use the ORM.")
        values.append(value)
    return values


# Fields whose ``get_db_prep_save`` is, on PostgreSQL with psycopg 3, the identity for None and
# for values of exactly one plain type (integer columns wrap it in psycopg's sized integer, as
# ``adapt_integerfield_value`` does): exact classes only, a subclass may convert.
_PLAIN = {
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.DateTimeField: datetime,
    models.SmallIntegerField: int,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveBigIntegerField: int,
}
_INTEGER_PK = (models.AutoField, models.BigAutoField, models.SmallAutoField)


def _spec(fields, connection) -> tuple:
    """Per field, once per process: its attname, its ``pre_save`` when it may differ from
    reading the attribute, the plain type whose prep ``_prepared`` skips (None: always prep),
    the integer wrapper and ``get_db_prep_save``."""
    known_ops = False
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.operations import DatabaseOperations as Postgres

        names = ("adapt_datetimefield_value", "adapt_integerfield_value", "validate_autopk_value")
        known_ops = hasattr(Postgres, "integerfield_type_map") and all(  # psycopg 3's
            getattr(type(connection.ops), name) is getattr(Postgres, name) for name in names
        )
    spec = []
    for f in fields:
        kind = type(f)
        reads = kind.pre_save in (
            Field.pre_save,
            DateField.pre_save,
            DateTimeField.pre_save,
        ) and not (getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))
        plain = wrap = None
        if known_ops and kind in _PLAIN:
            plain = _PLAIN[kind]
            if plain is int:
                wrap = connection.ops.integerfield_type_map[f.get_internal_type()]
        elif known_ops and kind is ForeignKey and type(f.target_field) in _INTEGER_PK:
            plain = int  # the target's prep: int() and validate_autopk_value, no wrapper
        spec.append((f.attname, None if reads else f.pre_save, plain, wrap, f.get_db_prep_save))
    return tuple(spec)


@functools.cache
def _update_statement(model: type[Model], names: tuple[str, ...], using: str) -> tuple[str, tuple]:
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    sql = (
        f"UPDATE {quote(model._meta.db_table)} "  # noqa: S608 (names from the models)
        f"SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
        f"WHERE {quote(model._meta.pk.column)} = %s"
    )
    return sql, _spec(fields, connection)


def save_fields(obj: Model, names: Sequence[str], using: str = DEFAULT_DB_ALIAS) -> None:
    """``obj.save(update_fields=names)`` from a statement written once per model and field
    list: the values prepared as ``save()`` prepares them, and an error when no row was
    updated, as ``save()`` raises."""
    connection = connections[using]
    unique = tuple(dict.fromkeys(names))
    sql, spec = _update_statement(type(obj), unique, using)
    params = [*_prepared(obj, spec, connection, add=False), obj.pk]
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        if not cursor.rowcount:
            raise DatabaseError("Save with update_fields did not affect any rows.")
