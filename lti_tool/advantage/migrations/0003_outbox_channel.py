"""Route existing AGS destinations and their outbox entries through their platform
registration's channel, which the per-platform dispatcher works from."""

from __future__ import annotations

from typing import Any

from django.db import migrations

AGS_DESTINATION = "lti_ags"


def fill_channels(apps: Any, schema_editor: Any) -> None:
    LineItem = apps.get_model("lti_advantage", "LineItem")
    ResultDestination = apps.get_model("progress", "ResultDestination")
    OutboxEntry = apps.get_model("progress", "OutboxEntry")
    for pk, registration_id in LineItem.objects.values_list("pk", "registration_id").iterator():
        channel = str(registration_id)
        ResultDestination.objects.filter(kind=AGS_DESTINATION, key=str(pk), channel="").update(channel=channel)
        OutboxEntry.objects.filter(destination_kind=AGS_DESTINATION, destination_key=str(pk), channel="").update(
            channel=channel
        )


class Migration(migrations.Migration):
    dependencies = [
        ("lti_advantage", "0002_initial"),
        ("progress", "0002_outbox_channel"),
    ]

    operations = [migrations.RunPython(fill_channels, migrations.RunPython.noop)]
