from django.db import migrations

# The audit log is append-only in the database itself, not only by convention: UPDATE and DELETE
# are refused, except nulling actor_id when a user is deleted (actor_email keeps who it was).
SQL = """
CREATE OR REPLACE FUNCTION accounts_auditevent_append_only() RETURNS trigger AS $$
DECLARE
    candidate accounts_auditevent;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit events are append-only (DELETE refused)';
    END IF;
    candidate := NEW;
    candidate.actor_id := OLD.actor_id;
    IF NEW.actor_id IS NOT NULL OR candidate IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'audit events are append-only (UPDATE refused)';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER accounts_auditevent_append_only
BEFORE UPDATE OR DELETE ON accounts_auditevent
FOR EACH ROW EXECUTE FUNCTION accounts_auditevent_append_only();
"""

REVERSE = """
DROP TRIGGER IF EXISTS accounts_auditevent_append_only ON accounts_auditevent;
DROP FUNCTION IF EXISTS accounts_auditevent_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
