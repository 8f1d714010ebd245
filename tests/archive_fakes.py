"""Stand-ins for the archives Binder links name (doi.org's handle API, Zenodo, Figshare,
Dataverse, HydroShare, CKAN), each a small HTTP server on 127.0.0.1.

Each speaks the part of the archive's public API that BinderHub and repo2docker read,
with the same paths and JSON fields; its records are plain attributes that a test
changes between two requests (a new version published, a file renamed, a record gone).
"""

from __future__ import annotations

import io
import json
import stat
import threading
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def as_json(data, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


def redirect(location: str) -> Reply:
    return Reply(302, b"", {"Location": location})


def page() -> Reply:
    return Reply(200, b"<html><body>a landing page</body></html>",
                 {"Content-Type": "text/html; charset=utf-8"})


NOT_FOUND = Reply(404, b"not found", {"Content-Type": "text/plain"})


def zip_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A zip of ``files`` (names as given, even hostile ones) and symbolic ``links``
    (name -> target), as a Unix zip stores them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buffer.getvalue()


class StandIn:
    """A server on 127.0.0.1 answering GETs with :meth:`answer`; ``asked`` lists the
    paths (with queries) it was asked, in order. Its URLs name ``host`` (which must
    resolve to 127.0.0.1); with ``pace``, bodies are sent 64 KiB at a time, ``pace``
    seconds apart, as a slow archive would."""

    def __init__(self, host: str = "127.0.0.1"):
        self.asked: list[str] = []
        self.host = host
        self.pace = 0.0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                stand_in.asked.append(self.path)
                parts = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
                reply = stand_in.answer(urllib.parse.unquote(parts.path), query)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                for start in range(0, len(reply.body), 64 * 1024):
                    if start and stand_in.pace:
                        time.sleep(stand_in.pace)
                    try:
                        self.wfile.write(reply.body[start:start + 64 * 1024])
                    except (BrokenPipeError, ConnectionResetError):
                        return  # the client stopped reading

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    def answer(self, path: str, query: dict) -> Reply:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DoiResolver(StandIn):
    """doi.org's handle API: ``/api/handles/<doi>`` → the URL the DOI names."""

    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self.dois: dict[str, str] = {}

    def add(self, doi: str, url: str) -> None:
        self.dois[doi.lower()] = url

    def answer(self, path, query):
        if not path.startswith("/api/handles/"):
            return NOT_FOUND
        doi = path[len("/api/handles/"):]
        if doi.lower() not in self.dois:
            return as_json({"responseCode": 100, "handle": doi}, status=404)
        return as_json({"responseCode": 1, "handle": doi, "values": [
            {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {}}},
            {"index": 1, "type": "URL", "data": {"format": "string",
                                                 "value": self.dois[doi.lower()]}}]})


class FakeZenodo(StandIn):
    """Records (``/records/<id>`` pages, ``/api/records/<id>`` and its files) and concept
    records whose page redirects to their latest version; the API does not know concept
    ids, as Zenodo's does not. ``gone`` records answer 410; ``answers_as`` makes the API
    answer for one record with another's id; with ``files_at``, file downloads
    redirect to that base URL (as archives redirect to their object stores)."""

    def __init__(self, doi: DoiResolver, host: str = "127.0.0.1"):
        super().__init__(host)
        self.doi = doi
        self.records: dict[str, dict[str, bytes]] = {}
        self.concepts: dict[str, str] = {}  # concept id -> latest record id
        self.gone: set[str] = set()
        self.answers_as: dict[str, str] = {}
        self.files_at: str | None = None

    def publish(self, record_id: str, files: dict[str, bytes], concept: str | None = None):
        self.records[record_id] = files
        self.doi.add(f"10.5281/zenodo.{record_id}", f"{self.url}/records/{record_id}")
        if concept:
            self.concepts[concept] = record_id
            self.doi.add(f"10.5281/zenodo.{concept}", f"{self.url}/records/{concept}")

    def answer(self, path, query):
        parts = path.strip("/").split("/")
        if parts[0] == "stored" and parts[1] in self.records:
            return Reply(200, self.records[parts[1]].get("/".join(parts[2:]), b""))
        if parts[0] == "records" and len(parts) == 2:
            if parts[1] in self.concepts:
                return redirect(f"/records/{self.concepts[parts[1]]}")
            return page() if parts[1] in self.records else NOT_FOUND
        if parts[:2] != ["api", "records"] or len(parts) < 3:
            return NOT_FOUND
        record_id = parts[2]
        if record_id in self.gone:
            return as_json({"status": 410, "message": "the record was removed"}, 410)
        if record_id not in self.records:
            return as_json({"status": 404, "message": "PID does not exist."}, 404)
        files = self.records[record_id]
        api = f"{self.url}/api/records/{record_id}"
        if len(parts) == 3:
            shown = self.answers_as.get(record_id, record_id)
            return as_json({"id": int(shown), "doi": f"10.5281/zenodo.{shown}",
                            "links": {"self": api, "files": f"{api}/files"},
                            "metadata": {"upload_type": "software"}})
        if parts[3:] == ["files"]:
            return as_json({"enabled": True, "entries": [
                {"key": key, "size": len(content),
                 "links": {"content": f"{api}/files/{urllib.parse.quote(key, safe='')}/content"}}
                for key, content in files.items()]})
        key = "/".join(parts[4:-1])
        if parts[3] == "files" and parts[-1] == "content" and key in files:
            if self.files_at:
                return redirect(f"{self.files_at}/stored/{record_id}/{urllib.parse.quote(key)}")
            return Reply(200, files[key], {"Content-Type": "application/octet-stream"})
        return NOT_FOUND


class FakeFigshare(StandIn):
    """Article pages (``/articles/<title>/<id>/<version>``), the API under ``/v2``
    (``articles/<id>/versions`` and ``…/versions/<n>``) and downloads; ``withdrawn``
    (article, version) pairs answer 404."""

    def __init__(self, doi: DoiResolver):
        super().__init__()
        self.doi = doi
        self.articles: dict[str, dict[int, dict[str, bytes]]] = {}
        self.withdrawn: set[tuple[str, int]] = set()
        self.downloads: dict[str, bytes] = {}

    @property
    def api(self) -> str:
        return f"{self.url}/v2"

    def publish(self, article: str, version: int, files: dict[str, bytes]) -> None:
        self.articles.setdefault(article, {})[version] = files
        prefix, page_url = f"10.6084/m9.figshare.{article}", f"{self.url}/articles/code/example"
        self.doi.add(prefix, f"{page_url}/{article}")
        self.doi.add(f"{prefix}.v{version}", f"{page_url}/{article}/{version}")

    def answer(self, path, query):
        parts = path.strip("/").split("/")
        if parts[0] == "articles":
            return page()
        if parts[:2] == ["ndownloader", "files"] and parts[2] in self.downloads:
            return Reply(200, self.downloads[parts[2]], {"Content-Type": "application/zip"})
        if parts[:2] != ["v2", "articles"] or len(parts) < 4 or parts[3] != "versions":
            return NOT_FOUND
        versions = {v: f for v, f in self.articles.get(parts[2], {}).items()
                    if (parts[2], v) not in self.withdrawn}
        if not versions:
            return as_json({"message": "Entity not found: article", "code": "EntityNotFound"}, 404)
        if len(parts) == 4:
            return as_json([{"version": v, "url": f"{self.api}/articles/{parts[2]}/versions/{v}"}
                            for v in sorted(versions)])
        version = int(parts[4]) if parts[4].isdigit() else 0
        if version not in versions:
            return as_json({"message": "Entity not found: version", "code": "EntityNotFound"}, 404)
        return as_json({"id": int(parts[2]), "version": version, "files": [
            self.file(parts[2], version, name, content)
            for name, content in versions[version].items()]})

    def file(self, article: str, version: int, name: str, content: bytes) -> dict:
        file_id = str(len(self.downloads) + 1000)
        self.downloads[file_id] = content
        return {"id": int(file_id), "name": name, "size": len(content), "is_link_only": False,
                "download_url": f"{self.url}/ndownloader/files/{file_id}"}


class FakeDataverse(StandIn):
    """A Dataverse installation: ``/api/datasets/:persistentId?persistentId=doi:…``
    (its latest version and files, ``directoryLabel`` and ``label`` from the file's path)
    and ``/api/access/datafile/<id>``; ``on_download`` runs before each file is sent."""

    def __init__(self, doi: DoiResolver):
        super().__init__()
        self.doi = doi
        self.datasets: dict[str, dict] = {}  # "doi:10.5072/FK2/ABC" -> dataset
        self.datafiles: dict[str, bytes] = {}
        self.on_download: Callable[[], None] = lambda: None

    def publish(self, doi: str, version: tuple[int, int], files: dict[str, bytes],
                dataset_id: int = 4242) -> None:
        pid = f"doi:{doi}"
        self.datasets[pid] = {"id": dataset_id, "version": version, "files": files}
        self.doi.add(doi, f"{self.url}/citation?persistentId={pid}")

    def answer(self, path, query):
        if path in ("/citation", "/dataset.xhtml"):
            return page()
        if path.startswith("/api/access/datafile/"):
            content = self.datafiles.get(path.rsplit("/", 1)[1])
            if content is None:
                return NOT_FOUND
            self.on_download()
            return Reply(200, content, {"Content-Type": "application/octet-stream"})
        if path != "/api/datasets/:persistentId":
            return NOT_FOUND
        pid = query.get("persistentId", "")
        dataset = self.datasets.get(pid)
        if dataset is None:
            return as_json({"status": "ERROR", "message": f"Dataset with Persistent ID {pid} "
                                                          "not found."}, 404)
        authority, identifier = pid[len("doi:"):].split("/", 1)
        major, minor = dataset["version"]
        return as_json({"status": "OK", "data": {
            "id": dataset["id"], "protocol": "doi", "authority": authority,
            "identifier": identifier, "persistentUrl": f"https://doi.org/{authority}/{identifier}",
            "latestVersion": {"versionNumber": major, "versionMinorNumber": minor,
                              "versionState": "RELEASED",
                              "files": [self.file(name, content)
                                        for name, content in dataset["files"].items()]}}})

    def file(self, name: str, content: bytes) -> dict:
        file_id = str(len(self.datafiles) + 500)
        self.datafiles[file_id] = content
        folder, _, label = name.rpartition("/")
        entry = {"label": label, "dataFile": {"id": int(file_id), "filename": label,
                                              "filesize": len(content)}}
        if folder:
            entry["directoryLabel"] = folder
        return entry


class FakeHydroShare(StandIn):
    """Resources' science metadata (``/hsapi/resource/<id>/scimeta/elements``) and their
    bags: ``/django_s3/download/bags/<id>.zip`` answers "not ready" (JSON) ``preparing``
    times, then redirects to the zip, ``<id>/data/contents/<file>`` inside as in a
    BagIt bag. ``bags`` replaces a resource's zip outright."""

    def __init__(self):
        super().__init__()
        self.resources: dict[str, dict] = {}
        self.bags: dict[str, bytes] = {}
        self.preparing = 0

    def publish(self, resource: str, modified: str, files: dict[str, bytes]) -> None:
        self.resources[resource] = {"modified": modified, "files": files}

    def bag(self, resource: str) -> bytes:
        if resource in self.bags:
            return self.bags[resource]
        files = {f"{resource}/bagit.txt": b"BagIt-Version: 0.96\n",
                 f"{resource}/data/resourcemetadata.xml": b"<rdf/>"}
        for name, content in self.resources[resource]["files"].items():
            files[f"{resource}/data/contents/{name}"] = content
        return zip_of(files)

    def answer(self, path, query):
        parts = path.strip("/").split("/")
        if parts[:2] == ["hsapi", "resource"] and parts[3:] == ["scimeta", "elements"]:
            resource = self.resources.get(parts[2])
            if resource is None:
                return as_json({"detail": "No resource was found for resource id"}, 404)
            return as_json({"title": "an example", "dates": [
                {"type": "created", "start_date": "2020-01-01T00:00:00.000000Z"},
                {"type": "modified", "start_date": resource["modified"]}]})
        if parts[:3] == ["django_s3", "download", "bags"]:
            resource = parts[3].removesuffix(".zip")
            if resource not in self.resources:
                return NOT_FOUND
            if self.preparing > 0:
                self.preparing -= 1
                return as_json({"bag_status": "Not ready", "task_id": "a-task"})
            return redirect(f"/bags/{resource}.zip")
        if parts[0] == "bags" and parts[1].removesuffix(".zip") in self.resources:
            return Reply(200, self.bag(parts[1].removesuffix(".zip")),
                         {"Content-Type": "application/zip"})
        return NOT_FOUND


class FakeCkan(StandIn):
    """A CKAN site under ``/ckan``: the action API (``status_show``, ``package_show``,
    ``activity_data_show``) and resources at ``/ckan/files/<name>``; a dataset's
    ``activities`` are earlier versions of it."""

    prefix = "/ckan"

    def __init__(self):
        super().__init__()
        self.datasets: dict[str, dict] = {}
        self.downloads: dict[str, bytes] = {}

    @property
    def site(self) -> str:
        return self.url + self.prefix

    def publish(self, name: str, modified: str, files: dict[str, bytes]) -> None:
        old = self.datasets.get(name, {})
        self.datasets[name] = {"id": f"id-of-{name}", "name": name, "metadata_modified": modified,
                               "resources": [self.resource(n, c) for n, c in files.items()],
                               "activities": old.get("activities", {})}

    def resource(self, name: str, content: bytes) -> dict:
        key = f"{len(self.downloads) + 1}/{name}"  # each version's own URL
        self.downloads[key] = content
        return {"id": f"res-{len(self.downloads)}", "name": name,
                "url": f"{self.site}/files/{urllib.parse.quote(key)}"}

    def record_activity(self, name: str, activity: str) -> None:
        """Keep the dataset as it is now as ``activity`` (CKAN's history)."""
        dataset = self.datasets[name]
        dataset["activities"][activity] = {k: v for k, v in dataset.items() if k != "activities"}

    def answer(self, path, query):
        if path.startswith(f"{self.prefix}/files/"):
            content = self.downloads.get(path[len(f"{self.prefix}/files/"):])
            return NOT_FOUND if content is None else Reply(200, content)
        action = path.removeprefix(f"{self.prefix}/api/3/action/")
        if action == "status_show":
            return as_json({"success": True, "result": {"ckan_version": "2.10.4"}})
        if action == "package_show":
            dataset = next((d for d in self.datasets.values()
                            if query.get("id") in (d["name"], d["id"])), None)
            if dataset is not None:
                return as_json({"success": True, "result": {
                    k: v for k, v in dataset.items() if k != "activities"}})
        if action == "activity_data_show" and query.get("object_type") == "package":
            for dataset in self.datasets.values():
                if query.get("id") in dataset["activities"]:
                    return as_json({"success": True,
                                    "result": dataset["activities"][query["id"]]})
        return as_json({"success": False, "error": {"message": "Not found",
                                                    "__type": "Not Found Error"}}, 404)
