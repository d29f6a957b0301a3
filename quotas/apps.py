from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"
    verbose_name = "Capacity, requests and reservations"

    def ready(self) -> None:
        from . import receivers, signals

        signals.capacity_freed.connect(
            receivers.on_capacity_freed, dispatch_uid="quotas.waitlist_on_capacity_freed"
        )
        signals.holds_at_risk.connect(
            receivers.on_holds_at_risk, dispatch_uid="quotas.notify_holds_at_risk"
        )
