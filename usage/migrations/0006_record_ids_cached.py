from django.db import migrations

# Each record of a batch took its id from the sequence: a locked buffer per row and a WAL
# record every 32 rows, 60 ms of a 100k-row batch's ~0.3 s of server CPU for the bare insert on
# the benchmark data. With a cache, a connection takes 1,000 ids at a time. Ids keep no order
# between connections and skip what a connection leaves unused; nothing reads them as a
# sequence of arrivals (records are ordered by hour, the id only breaks ties).
CACHED = ("usage_usagerecord", "usage_usagedaily")


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_lean_indexes_natural_key_by_hour")]

    operations = [
        migrations.RunSQL(
            sql=[f"ALTER TABLE {table} ALTER COLUMN id SET CACHE 1000" for table in CACHED],
            reverse_sql=[f"ALTER TABLE {table} ALTER COLUMN id SET CACHE 1" for table in CACHED],
        )
    ]
