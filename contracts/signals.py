"""Signals other apps may listen to (webhook delivery subscribes here when it arrives)."""

from django.dispatch import Signal

# Sent after the transaction that fired a spend alert commits, with ``organization``,
# ``event`` ("contract.spend_threshold" or "contract.underuse_forecast") and ``payload``
# (a JSON-ready dict: contract id and number, the alert, its figures).
spend_alert_fired = Signal()

# Sent after the transaction that fired a quota utilization alert commits, with
# ``organization``, ``event`` ("quota.utilization") and ``payload`` (SKU, region, threshold,
# percent, GPUs in use, quota, hour).
quota_alert_fired = Signal()
