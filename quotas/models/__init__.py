from .catalog import CapacityChange, CapacityHold, CapacityPool, GpuSku, Region

__all__ = ["CapacityChange", "CapacityHold", "CapacityPool", "GpuSku", "Region"]
