# The API's request list reads an organization's newest requests a page at a time: this index
# gives them in order (and their number, index-only) instead of sorting all of them per call.
# Built concurrently: writes to the requests table go on while it builds.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("quotas", "0004_hold_live_pool_end"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="capacityrequest",
            index=models.Index(
                fields=["organization", "-created_at", "-id"], name="request_org_recent"
            ),
        ),
    ]
