from django.db import models


class Marker(models.Model):
    """A business row written by test jobs, to prove what a crashed attempt left behind."""

    run_id = models.UUIDField()
    attempt = models.PositiveSmallIntegerField()
    n = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"marker {self.n} of run {self.run_id} attempt {self.attempt}"
