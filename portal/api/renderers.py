"""JSON rendering of the API, with room for parts encoded in advance.

``PortalJSONRenderer`` is DRF's ``JSONRenderer`` (compact, UTF-8, U+2028/U+2029 escaped);
any ``EncodedJSON`` inside the data is written as it is instead of being encoded again. A page
of the request list encodes its rows straight from the database's values (one string each,
``quotas.api.request_list``) rather than building 50 dictionaries for the encoder to walk:
half the CPU of that step.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.renderers import JSONRenderer

# The json module's own string encoder when it does not escape to ASCII.
_encode_string = json.encoder.encode_basestring


class EncodedJSON(str):
    """JSON text, encoded as DRF's JSONRenderer encodes (compact separators, no ASCII escaping,
    U+2028/U+2029 left for the renderer to escape)."""


class PortalJSONRenderer(JSONRenderer):
    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        if not _holds_encoded(data):
            return super().render(data, accepted_media_type, renderer_context)
        renderer_context = renderer_context or {}
        indent = self.get_indent(accepted_media_type, renderer_context)
        if indent or self.ensure_ascii or not self.compact:
            # Another layout than the one encoded in advance: decode and render it anew.
            return super().render(_decoded(data), accepted_media_type, renderer_context)
        text = self._encode(data)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()

    def _encode(self, data: Any) -> str:
        if isinstance(data, EncodedJSON):
            return data
        if isinstance(data, dict):
            items = (
                f"{self._leaf(_key(key))}:{self._encode(value)}" for key, value in data.items()
            )
            return "{" + ",".join(items) + "}"
        if isinstance(data, list | tuple):
            if all(type(item) is EncodedJSON for item in data):  # a page of rows
                return "[" + ",".join(data) + "]"
            return "[" + ",".join(self._encode(item) for item in data) + "]"
        return self._leaf(data)

    def _leaf(self, value: Any) -> str:
        # What json.dumps writes for the plain values of a page's envelope (keys, count, links),
        # without building an encoder for each (this path never escapes to ASCII).
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if type(value) is str:
            return _encode_string(value)
        if type(value) is int:
            return int.__repr__(value)
        return json.dumps(
            value,
            cls=self.encoder_class,
            ensure_ascii=self.ensure_ascii,
            allow_nan=not self.strict,
            separators=(",", ":"),
        )


def _holds_encoded(data: Any) -> bool:
    if isinstance(data, EncodedJSON):
        return True
    if isinstance(data, dict):
        return any(_holds_encoded(value) for value in data.values())
    if isinstance(data, list | tuple):
        return any(isinstance(item, EncodedJSON) or _holds_encoded(item) for item in data)
    return False


def _key(key: Any) -> str:
    """A key as the json module writes it (it turns True into "true", 1 into "1")."""
    return key if isinstance(key, str) else json.dumps(key)


def _decoded(data: Any) -> Any:
    if isinstance(data, EncodedJSON):
        return json.loads(data)
    if isinstance(data, dict):
        return {key: _decoded(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_decoded(item) for item in data]
    return data
