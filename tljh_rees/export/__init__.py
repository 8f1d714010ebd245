"""HPC export: Docker images to SIF (Singularity/Apptainer) files, and pushes to registries.

``convert`` picks Apptainer when it is installed and otherwise assembles the SIF from
Debian tools (``sif``, ``singularity_d``); ``push`` sends a SIF as an ORAS artifact or an
image as OCI; ``command`` is the ``tljh-rees build`` / ``repo2singularity`` command line;
``jobs`` runs exports for the service.
"""

from .errors import ExportError, MissingTool, RegistryError

__all__ = ["ExportError", "MissingTool", "RegistryError"]
