"""Running the machine: disk garbage collection."""
