"""Signals the capacity services send after their transaction commits.

- ``capacity_freed(pool_id=...)``: capacity became available in a pool (a hold was released or
  shrunk, capacity was added), so a waitlisted request may now fit.
- ``holds_at_risk(hold_ids=[...])``: a capacity reduction left these holds without GPUs behind
  them; their account managers must be told.

Receivers run after commit and must be idempotent: a signal is a hint to look at the database,
which stays the source of truth.
"""

from django.dispatch import Signal

capacity_freed = Signal()
holds_at_risk = Signal()
