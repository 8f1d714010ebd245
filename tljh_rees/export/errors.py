"""Errors of the export that reach people; each message says what to do."""

from __future__ import annotations


class ExportError(RuntimeError):
    """The export failed; the message is meant for the person who asked for it."""


class MissingTool(ExportError):
    """A command-line tool is not installed; the message names the package to install."""

    def __init__(self, tool: str, package: str):
        super().__init__(f"'{tool}' is not installed: install the Debian/Ubuntu package "
                         f"'{package}' (sudo apt-get install {package})")
        self.tool = tool
        self.package = package


class RegistryError(ExportError):
    """The registry refused or could not be reached."""


class NoSpace(ExportError):
    """The disk filled up while writing; nothing was left under the final name."""

    def __init__(self, path: str, detail: str = ""):
        super().__init__(f"not enough disk space to write {path}"
                         + (f" ({detail})" if detail else "")
                         + "; free some space or choose another directory")
        self.path = path
