"""PortalJSONRenderer writes what DRF's JSONRenderer writes for the same data, rows encoded in
advance (EncodedJSON) or not."""

import json

import pytest
from rest_framework.renderers import JSONRenderer

from portal.api.renderers import EncodedJSON, PortalJSONRenderer

AWKWARD = 'q"uote \\ café 🚀\u2028\u2029\x01\ttab'
ROWS = [{"id": 1, "note": AWKWARD, "ok": True, "gone": None}, {"id": 2, "list": [1, "a"]}]


def _encoded(row) -> EncodedJSON:
    return EncodedJSON(json.dumps(row, ensure_ascii=False, separators=(",", ":")))


@pytest.mark.parametrize(
    "envelope",
    [
        {"count": 2, "next": "http://testserver/api/v1/x/?page=2&page_size=1", "previous": None},
        {"count": 0, "next": None, "previous": None},
        {"count": 10**20, "next": AWKWARD, "previous": "é", "flag": True, "off": False},
        {"count": 1.5, 3: "int key", True: "bool key", None: "none key"},
    ],
)
@pytest.mark.parametrize("rows", [ROWS, [], [ROWS[0]]])
@pytest.mark.parametrize("accept", [None, "application/json; indent=2"])
def test_pages_render_as_drf_renders_them(envelope, rows, accept):
    expected = JSONRenderer().render({**envelope, "results": rows}, accept)
    encoded = {**envelope, "results": [_encoded(row) for row in rows]}
    assert PortalJSONRenderer().render(encoded, accept) == expected
    mixed = {**envelope, "results": [_encoded(rows[0]), *rows[1:]] if rows else []}
    assert PortalJSONRenderer().render(mixed, accept) == expected
