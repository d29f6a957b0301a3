"""The CSV ingest judges plain GPU-hours, utilization and reservation spellings in SQL without
regular expressions (one per row cost more than every other check of a batch): each SQL test
must accept exactly the strings its regular expression accepts, and PostgreSQL's own regular
expression engine is the reference."""

import itertools

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage.services import CSV_PLAIN, CSV_PLAIN_PATTERNS

pytestmark = pytest.mark.django_db

# Around every boundary of the three spellings: lengths, a dot at each place, signs, exponents,
# spaces, a trailing newline, non-ASCII digits, the digits after "1." other than 0.
EDGES = [
    "0",
    "1",
    "2",
    "00",
    "0.",
    "1.",
    "2.",
    ".",
    ".5",
    "0.0",
    "0.1234",
    "0.12345",
    "1.0000",
    "1.00000",
    "1.0001",
    "1.5",
    "0.9999",
    "12345678",
    "123456789",
    "12345678.1234",
    "12345678.12345",
    "123456789.1",
    "1..2",
    "1.2.3",
    "-1",
    "+1",
    "1e3",
    " 1",
    "1 ",
    "1\n",
    "\n",
    "\u0661\u0662",
    "\u0660.\u0665",
    "0x1",
    "nan",
    "Infinity",
    "9" * 18,
    "9" * 19,
    "0" * 18,
    "01.0000",
    "00.0000",
    "10",
    "0.00001",
    "1.0 ",
]


def _sql_verdicts(values: list[str]) -> dict[str, list[tuple[bool, bool]]]:
    """Per spelling, (SQL test, PostgreSQL regular expression) for each value."""
    answers = {}
    with connection.cursor() as cursor:
        for name, plain in CSV_PLAIN.items():
            cursor.execute(
                f"SELECT {plain('v')}, v ~ %s FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, n) "
                "ORDER BY n",
                [CSV_PLAIN_PATTERNS[name], values],
            )
            answers[name] = cursor.fetchall()
    return answers


def test_plain_tests_match_their_regular_expressions_on_the_edges():
    alphabet = "019.-e \n"
    generated = [
        "".join(chars) for size in range(1, 5) for chars in itertools.product(alphabet, repeat=size)
    ]
    values = EDGES + generated
    for name, rows in _sql_verdicts(values).items():
        differ = [value for value, (sql, regex) in zip(values, rows, strict=True) if sql != regex]
        assert not differ, (name, differ[:10])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("0123456789.1-+e \u0663"), min_size=1, max_size=22),
        min_size=1,
        max_size=200,
    )
)
def test_plain_tests_match_their_regular_expressions_on_random_spellings(values):
    for name, rows in _sql_verdicts(values).items():
        differ = [value for value, (sql, regex) in zip(values, rows, strict=True) if sql != regex]
        assert not differ, (name, differ[:10])
