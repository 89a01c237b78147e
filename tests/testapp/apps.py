from django.apps import AppConfig


class TestAppConfig(AppConfig):
    """Jobs used by the test suite; loaded by tests.settings only."""

    name = "tests.testapp"
    label = "testapp"
