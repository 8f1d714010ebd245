"""Running a busy machine: metrics for Prometheus, quotas on launches and builds."""
