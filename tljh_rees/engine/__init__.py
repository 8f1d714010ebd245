"""The container engine: installing and starting Docker, talking to it, base images."""
