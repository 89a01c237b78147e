"""Project-level admin tweaks."""

from django.contrib import admin
from django_dramatiq.models import Task

# django-dramatiq's Task admin renders message arguments unescaped and duplicates what
# jobs.JobRun records; keep its app (for `rundramatiq`) but not its admin page.
if admin.site.is_registered(Task):
    admin.site.unregister(Task)
