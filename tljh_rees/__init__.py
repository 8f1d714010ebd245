"""tljh-rees: a Binder-like service for The Littlest JupyterHub."""

__version__ = "0.1.0"

SERVICE_NAME = "rees"

# Custom JupyterHub scopes the service checks (JupyterHub requires the "custom:" prefix).
BUILD_SCOPE = "custom:rees:build"
ADMIN_SCOPE = "custom:rees:admin"
METRICS_SCOPE = "custom:rees:metrics"  # read GET metrics (Prometheus)

# Prefix of the image labels that make images the source of truth for environments.
LABEL_PREFIX = "org.tljh-rees."
