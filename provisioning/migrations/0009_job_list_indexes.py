"""The job list filtered by action or by status, newest first (its order): an index range, not a scan of a million
jobs. Built CONCURRENTLY on PostgreSQL so that a deployment does not hold up the workers writing jobs meanwhile."""

from django.db import migrations, models

INDEXES = [
    models.Index(fields=["action", "-created_at"], name="provisioning_job_action_new"),
    models.Index(fields=["status", "-created_at"], name="provisioning_job_status_new"),
]


def indexes_create(apps, schema_editor):
    model = apps.get_model("provisioning", "ProvisioningJob")
    for index in INDEXES:
        if schema_editor.connection.vendor == "postgresql":
            sql = index.create_sql(model, schema_editor, concurrently=True)
            schema_editor.execute(str(sql).replace("CONCURRENTLY", "CONCURRENTLY IF NOT EXISTS", 1))
        else:
            schema_editor.add_index(model, index)


def indexes_drop(apps, schema_editor):
    model = apps.get_model("provisioning", "ProvisioningJob")
    for index in INDEXES:
        schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("provisioning", "0008_attention_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="provisioningjob", index=index) for index in INDEXES],
            database_operations=[migrations.RunPython(indexes_create, indexes_drop)],
        ),
    ]
