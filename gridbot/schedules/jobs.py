"""Job functions, registered by the `job` values of [[schedules]]."""
