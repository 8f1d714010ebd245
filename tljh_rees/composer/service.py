"""The composer's operations, as the API and pages use them: sections in, specs out.

Saving from the composer is refused while any section has an error (the previous
version stays as it was). Imports and forks store the files as they are — those came
from elsewhere and may already build — and report their problems to fix afterwards.
"""

from __future__ import annotations

import asyncio
import os

from traitlets import Instance, Int
from traitlets.config import LoggingConfigurable

from .archive import Imported, Limits
from .errors import SpecError
from .preview import Previewer
from .sections import SECTION_IDS, config_dir, files_from_sections, may_be_section, \
    section_paths, sections_from_files
from .store import SpecStore
from .validate import ERROR, validate

META_FIELDS = ("display_name", "description")


class InvalidSpec(SpecError):
    """Saving was refused: ``problems`` lists every error with its section and line."""

    def __init__(self, problems: list):
        errors = [p for p in problems if p.severity == ERROR]
        first = errors[0]
        where = f"{first.to_dict()['file']}" + (f" line {first.line}" if first.line else "")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__("sections", f"{where}: {first.message}{more}", 422)
        self.problems = problems


class Composer(LoggingConfigurable):
    store = Instance(SpecStore)
    previewer = Instance(Previewer)
    max_section_bytes = Int(1024**2, config=True, help="Largest text of one section.")

    def __init__(self, root: str, services=None, **kwargs):
        super().__init__(**kwargs)
        self.store = SpecStore(parent=self, root=root)
        self.previewer = Previewer(parent=self)
        self.services = services  # the site's add-on services (a ServiceCatalog), if any

    # --- input ------------------------------------------------------------------------

    def check_sections(self, sections) -> dict[str, str]:
        if sections is None:
            return {}
        if not isinstance(sections, dict):
            raise SpecError("sections", f"expected an object with any of "
                                        f"{', '.join(SECTION_IDS)}")
        unknown = sorted(set(sections) - set(SECTION_IDS))
        if unknown:
            raise SpecError("sections", f"unknown section(s) {', '.join(unknown)}; expected "
                                        f"{', '.join(SECTION_IDS)}")
        for key, value in sections.items():
            if value is not None and not isinstance(value, str):
                raise SpecError("sections", f"{key}: expected the file's text")
            if value and len(value.encode()) > self.max_section_bytes:
                raise SpecError("sections", f"{key}: longer than {self.max_section_bytes} "
                                            "bytes")
        return {k: v or "" for k, v in sections.items()}

    @staticmethod
    def check_meta(data: dict) -> dict:
        meta = {}
        for key in META_FIELDS:
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise SpecError(key, "expected text")
            limit = 200 if key == "display_name" else 2000
            if len(value) > limit:
                raise SpecError(key, f"longer than {limit} characters")
            meta[key] = value
        return meta

    @staticmethod
    def check_message(message) -> str:
        """A version's message: text (git takes it as an argument, so no NUL)."""
        if message is None:
            return ""
        if not isinstance(message, str) or "\0" in message:
            raise SpecError("message", "expected text")
        return message

    def limits(self) -> Limits:
        s = self.store
        return Limits(s.max_files, s.max_file_bytes, s.max_total_bytes)

    # --- reading ----------------------------------------------------------------------

    def spec(self, name: str, version: str | None = None) -> dict:
        info = self.store.info(name)
        files = self.store.files(name, version, wanted=may_be_section)
        sections, paths = sections_from_files(files.contents, files.sizes)
        data = info.to_dict()
        data.update(
            version=files.version,
            newest_version=info.version,
            sections=sections,
            section_files=paths,
            config_dir=config_dir(files.sizes),
            files=[{"path": p, "size": s, "executable": p in files.executable}
                   for p, s in sorted(files.sizes.items())],
            problems=[p.to_dict() for p in validate(sections, set(files.sizes), self.services)],
        )
        return data

    def list(self) -> list[dict]:
        return [info.to_dict() for info in self.store.list()]

    def validate(self, sections: dict, spec: str | None = None) -> list[dict]:
        sections = self.check_sections(sections)
        others = set(self.store.files(spec).sizes) if spec and self.store.exists(spec) else ()
        return [p.to_dict() for p in validate(sections, others, self.services)]

    # --- writing ----------------------------------------------------------------------

    def create(self, name: str, owner: str, sections=None, message: str = "",
               **meta) -> dict:
        sections = self.check_sections(sections)
        meta = self.check_meta(meta)
        message = self.check_message(message)
        self._refuse_errors(sections)
        paths = section_paths((), "")
        changes = {p: t.encode() for p, t in files_from_sections(sections, paths).items()
                   if t is not None}
        self.store.create(name, owner, changes, message=message, **meta)
        return self.spec(name)

    def save(self, name: str, author: str, sections, base_version: str | None = None,
             message: str = "", **meta) -> dict:
        sections = self.check_sections(sections)
        meta = self.check_meta(meta)
        message = self.check_message(message)
        if base_version is not None and not isinstance(base_version, str):
            raise SpecError("base_version", "expected the version a save returned")
        self._refuse_errors(sections, name)
        current = self.store.files(name, wanted=may_be_section)
        _, paths = sections_from_files(current.contents, current.sizes)
        files = files_from_sections(sections, paths)
        changes = {p: (t.encode() if t is not None else None) for p, t in files.items()
                   if t is not None or p in current.sizes}
        self.store.save(name, changes, author, message=message, base_version=base_version)
        if meta:
            self.store.update_meta(name, **meta)
        return self.spec(name)

    def import_files(self, name: str, user: str, imported: Imported, replace: bool,
                     **meta) -> dict:
        """A new spec from imported files, or (``replace``) a new version of one."""
        meta = self.check_meta(meta)
        if replace:
            self.store.save(name, dict(imported.files), user, message="Imported files",
                            replace_all=True, executable=imported.executable)
            if meta:
                self.store.update_meta(name, **meta)
        else:
            self.store.create(name, user, dict(imported.files), message="Imported files",
                              executable=imported.executable, **meta)
        return self.spec(name)

    def fork(self, name: str, owner: str, source: tuple[str, str, str], forked_from: str,
             **meta) -> dict:
        """A new spec holding the files of ``source`` = (repository, commit, ref)."""
        meta = self.check_meta(meta)
        self.store.create(name, owner, {}, message=f"Forked from {forked_from}",
                          source=source, forked_from=forked_from, **meta)
        return self.spec(name)

    def _refuse_errors(self, sections: dict, spec: str | None = None) -> None:
        others = set(self.store.files(spec).sizes) if spec else ()
        problems = validate(sections, others, self.services)
        if any(p.severity == ERROR for p in problems):
            raise InvalidSpec(problems)

    # --- preview ----------------------------------------------------------------------

    async def preview_import(self, imported: Imported) -> dict:
        """What an import would be: its REES files, their problems and repo2docker's
        view of them, without saving anything."""
        paths = [p for p in imported.files if may_be_section(p)]

        def write(directory: str) -> None:
            for path, content in imported.files.items():
                full = os.path.join(directory, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(content)

        def problems() -> list[dict]:
            sections, _ = sections_from_files({p: imported.files[p] for p in paths},
                                              imported.files)
            return [p.to_dict() for p in validate(sections, set(imported.files),
                                                  self.services)]

        result = await self.previewer.preview_files(write)
        result["problems"] = await asyncio.to_thread(problems)
        result["rees_files"] = sorted(paths)
        result["files"] = len(imported.files)
        return result

    async def preview(self, sections=None, spec: str | None = None,
                      version: str | None = None) -> dict:
        """repo2docker's view of a saved version, or of ``sections`` laid over it.
        Git and the checks (``bash -n`` among them) run off the event loop."""
        sections = self.check_sections(sections) if sections is not None else None

        def base_and_paths():
            if not spec:
                return None, section_paths((), "")
            base = self.store.resolve(spec, version)
            current = self.store.files(spec, base, wanted=may_be_section)
            return base, sections_from_files(current.contents, current.sizes)[1]

        base, paths = await asyncio.to_thread(base_and_paths)

        def write(directory: str) -> None:
            if spec:
                self.store.checkout(spec, base, directory)
            if sections is None:
                return
            for path, text in files_from_sections(sections, paths).items():
                full = os.path.join(directory, path)
                if text is None:
                    if os.path.lexists(full):
                        os.remove(full)
                    continue
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as f:
                    f.write(text)

        def problems() -> list[dict]:
            others = set(self.store.files(spec, base).sizes) if spec else ()
            return [p.to_dict() for p in validate(sections, others, self.services)]

        result = await self.previewer.preview_files(write)
        if sections is not None:
            result["problems"] = await asyncio.to_thread(problems)
        result["version"] = base
        return result

