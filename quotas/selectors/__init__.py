"""Reads of the quotas app, one module per topic (``availability``, ``requests``...)."""
