"""Running a busy machine: disk garbage collection, metrics for Prometheus, quotas on
launches and builds."""
