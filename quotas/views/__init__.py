"""Pages for capacity requests and reservations: ``tenant`` under /o/<slug>/, ``staff`` under
/staff/, ``base`` for what they share (the organization's time zone, domain errors on forms)."""
