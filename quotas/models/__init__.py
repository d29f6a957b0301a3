from .catalog import CapacityChange, CapacityHold, CapacityPool, GpuSku, Region
from .requests import (
    ApprovalPolicy,
    CapacityRequest,
    OnDemandQuota,
    OnDemandQuotaChange,
    RequestCheck,
    RequestComment,
    RequestEvent,
    Reservation,
)

__all__ = [
    "ApprovalPolicy",
    "CapacityChange",
    "CapacityHold",
    "CapacityPool",
    "CapacityRequest",
    "GpuSku",
    "OnDemandQuota",
    "OnDemandQuotaChange",
    "Region",
    "RequestCheck",
    "RequestComment",
    "RequestEvent",
    "Reservation",
]
