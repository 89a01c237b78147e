from django.apps import AppConfig


class SaasConfig(AppConfig):
    """The project itself: health check, the one-process `runall` command."""

    name = "saas"
    verbose_name = "Site"

    def ready(self) -> None:
        from saas import checks  # noqa: F401 - registers the deploy checks
