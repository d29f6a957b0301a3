"""Catalog, capacity pools, capacity requests, reservations and quotas."""
