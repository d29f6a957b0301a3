"""REST API of the catalog, requests, reservations, quotas and the staff inbox."""
