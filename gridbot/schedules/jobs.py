"""Job functions, registered by the `job` values of [[schedules]] (see runner.job)."""

from . import digest, overdue, reminders, tally  # noqa: F401  (each module registers its jobs)
