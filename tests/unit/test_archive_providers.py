"""Archive providers against stand-ins of the archives (tests.archive_fakes) on 127.0.0.1:
what a link resolves to, which files a fetch gives, and what it refuses.

The archive is not trusted: its names, sizes and versions come from whoever made the
record. Every refusal has a control showing that the same set-up is fetched when the one
hostile detail is left out, so that the refusal is not an accident of the set-up.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse

import pytest

from tests.archive_fakes import (DoiResolver, FakeCkan, FakeDataverse, FakeFigshare,
                                 FakeHydroShare, FakeZenodo, StandIn, as_json, page, zip_of)
from tljh_rees.binder.archives import (ARCHIVE_PROVIDERS, ArchiveSource, CkanProvider,
                                       DataverseProvider, FetchFailed, FigshareProvider, Files,
                                       Http,
                                       HydroShareProvider, RecordChanged, RecordTooLarge,
                                       UnsafeName, ZenodoProvider, epoch)
from tljh_rees.builds.builder import BuildFailed
from tljh_rees.errors import InputError, ReesError

ID = "8f7c2f0341ef4180b0dbe97f59130756"  # a HydroShare resource id
LOCAL = {"public_addresses_only": False}  # the stand-ins are on 127.0.0.1


@pytest.fixture
def doi():
    server = DoiResolver()
    yield server
    server.close()


@pytest.fixture
def zenodo(doi):
    server = FakeZenodo(doi)
    yield server
    server.close()


@pytest.fixture
def figshare(doi):
    server = FakeFigshare(doi)
    yield server
    server.close()


@pytest.fixture
def dataverse(doi):
    server = FakeDataverse(doi)
    yield server
    server.close()


@pytest.fixture
def hydroshare():
    server = FakeHydroShare()
    yield server
    server.close()


@pytest.fixture
def ckan():
    server = FakeCkan()
    yield server
    server.close()


def zenodo_provider(zenodo, doi, **config):
    return ZenodoProvider(base_url=zenodo.url, doi_resolver_url=doi.url, **LOCAL, **config)


def figshare_provider(figshare, doi, **config):
    return FigshareProvider(base_url=figshare.url, api_url=figshare.api,
                            doi_resolver_url=doi.url, **LOCAL, **config)


def dataverse_provider(doi, **config):
    return DataverseProvider(doi_resolver_url=doi.url, **LOCAL, **config)


def hydroshare_provider(hydroshare, **config):
    config.setdefault("bag_poll_interval", 0.01)
    return HydroShareProvider(base_url=hydroshare.url, **LOCAL, **config)


def ckan_provider(**config):
    return CkanProvider(**LOCAL, **config)


def files_in(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> content); links and folders named."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            found[rel] = b"<link>" if os.path.islink(path) else open(path, "rb").read()
    return found


async def fetch(resolved, tmp_path, on_line=lambda line: None) -> dict[str, bytes]:
    dest = tmp_path / "repo"
    assert await resolved.source.fetch(resolved.version, str(dest), on_line) == \
        resolved.version
    return files_in(dest)


def only_repo_in(tmp_path) -> None:
    """Nothing was written beside the fetch's folder (``repo``) in the test's folder."""
    assert sorted(os.listdir(tmp_path)) in ([], ["repo"])
    assert not os.path.exists(tmp_path / "repo") or not files_in(tmp_path / "repo")


def outside_names(files: dict, tmp_path) -> dict:
    """``files`` with ``{outside}`` in names made an absolute path beside the fetch's
    folder (where an escape would land, in the test's own folder)."""
    return {name.replace("{outside}", str(tmp_path / "outside")): content
            for name, content in files.items()}


def quoted(url: str) -> str:
    return urllib.parse.quote(url, safe="")


# -- every provider -------------------------------------------------------------------------

def test_display_config_is_binderhubs():
    """What /api/repoproviders lists for the archive providers, from the notes (§3.10)."""
    expected = [
        {"displayName": "Zenodo DOI", "id": "zenodo", "spec": {"validateRegex": "10\\.\\d+\\/(.)+"},
         "repo": {"label": "Zenodo DOI", "placeholder": "example: 10.5281/zenodo.3242074",
                  "urlEncode": False}, "ref": {"enabled": False}},
        {"displayName": "FigShare DOI", "id": "figshare",
         "spec": {"validateRegex": "10\\.\\d+\\/(.)+"},
         "repo": {"label": "FigShare DOI", "placeholder": "example: 10.6084/m9.figshare.9782777.v1",
                  "urlEncode": False}, "ref": {"enabled": False}},
        {"displayName": "Hydroshare resource", "id": "hydroshare", "spec": {"validateRegex": "[^/]+"},
         "repo": {"label": "Hydroshare resource id",
                  "placeholder": "example: 8f7c2f0341ef4180b0dbe97f59130756", "urlEncode": True},
         "ref": {"enabled": False}},
        {"displayName": "Dataverse DOI", "id": "dataverse",
         "spec": {"validateRegex": "10\\.\\d+\\/(.)+"},
         "repo": {"label": "Dataverse DOI", "placeholder": "example: 10.7910/DVN/TJCLKP",
                  "urlEncode": False}, "ref": {"enabled": False}},
        {"displayName": "CKAN dataset", "id": "ckan", "spec": {"validateRegex": "[^/]+"},
         "repo": {"label": "CKAN dataset URL",
                  "placeholder": "https://demo.ckan.org/dataset/my-sample-dataset-001",
                  "urlEncode": True}, "ref": {"enabled": False}},
    ]
    assert [cls().display_config() for cls in ARCHIVE_PROVIDERS] == expected


def test_timestamps_are_utc_seconds():
    assert epoch("2024-01-02T03:04:05.678901") == "1704164645"
    assert epoch("2024-01-02T03:04:05Z") == "1704164645"


async def test_a_source_has_only_its_version(zenodo, doi):
    zenodo.publish("101", {"README.md": b"hello"})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    source = resolved.source
    assert isinstance(source, ArchiveSource) and not source.private
    assert source.repo == "10.5281/zenodo.101"
    for ref in (None, "", "HEAD", "101"):
        assert await source.resolve(ref) == "101"
    with pytest.raises(InputError) as e:
        await source.resolve("102")
    assert e.value.field == "ref"


async def test_private_addresses_are_refused_unless_allowed(ckan, tmp_path):
    ckan.publish("sample", "2024-01-02T03:04:05.000000", {"Dockerfile": b"FROM x\n"})
    spec = quoted(f"{ckan.site}/dataset/sample")
    with pytest.raises(InputError) as e:
        await CkanProvider().resolve(spec)  # the default: public addresses only
    assert (e.value.field, e.value.status) == ("spec", 422)
    assert "private or local address" in e.value.message
    assert ckan.asked == []  # refused before any request
    resolved = await ckan_provider().resolve(spec)
    assert await fetch(resolved, tmp_path) == {"Dockerfile": b"FROM x\n"}


async def test_a_download_redirected_to_a_private_address_is_refused(tmp_path, monkeypatch):
    """A public archive whose file redirects to the loopback: each redirect is checked.
    ('localhost' stands for a public host here: the address check is told so.)"""
    monkeypatch.setattr(Http, "addresses",
                        staticmethod(lambda host: {"93.184.216.34" if host == "localhost"
                                                   else "127.0.0.1"}))
    doi, zenodo = DoiResolver("localhost"), None
    try:
        zenodo = FakeZenodo(doi, "localhost")
        zenodo.publish("101", {"README.md": b"hello"})
        provider = ZenodoProvider(base_url=zenodo.url, doi_resolver_url=doi.url)
        resolved = await provider.resolve("10.5281/zenodo.101")
        assert await fetch(resolved, tmp_path / "control") == {"README.md": b"hello"}
        zenodo.files_at = zenodo.url.replace("localhost", "127.0.0.1")
        with pytest.raises(FetchFailed, match="private or local address"):
            await fetch(resolved, tmp_path / "hostile")
        only_repo_in(tmp_path / "hostile")
        assert not any(path.startswith("/stored/") for path in zenodo.asked)
        provider.public_addresses_only = False  # and the redirect itself works
        assert await fetch(resolved, tmp_path / "hostile") == {"README.md": b"hello"}
        assert any(path.startswith("/stored/") for path in zenodo.asked)
    finally:
        doi.close()
        if zenodo:
            zenodo.close()


async def test_an_archive_answering_nonsense_is_a_502_naming_it(doi):
    class Odd(StandIn):
        def answer(self, path, query):
            return as_json([1, 2, 3]) if path.startswith("/api/") else page()

    odd = Odd()
    try:
        doi.add("10.5072/FK2/ODD", f"{odd.url}/citation?persistentId=doi:10.5072/FK2/ODD")
        with pytest.raises(ReesError) as e:
            await dataverse_provider(doi).resolve("10.5072/FK2/ODD")
        assert (e.value.field, e.value.status) == ("spec", 502)
        assert "Dataverse answered" in e.value.message and "not a JSON dict" in e.value.message
    finally:
        odd.close()


# -- Zenodo ------------------------------------------------------------------------------

async def test_zenodo_resolves_a_record_doi(zenodo, doi):
    zenodo.publish("101", {"README.md": b"hello"}, concept="100")
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    assert resolved.provider == "zenodo"
    assert resolved.spec == "10.5281/zenodo.101"
    assert resolved.version == "101"
    assert resolved.resolved_spec == "10.5281/zenodo.101"
    assert resolved.repo_url == "10.5281/zenodo.101"
    assert resolved.ref_url == f"{doi.url}/10.5281/zenodo.101"
    assert resolved.slug == "zenodo-101"


async def test_zenodo_concept_doi_resolves_to_the_latest_record(zenodo, doi):
    zenodo.publish("101", {"README.md": b"one"}, concept="100")
    zenodo.publish("102", {"README.md": b"two"}, concept="100")
    for spec in ("10.5281/zenodo.100", "doi:10.5281/zenodo.100",
                 "https://doi.org/10.5281/zenodo.100"):
        resolved = await zenodo_provider(zenodo, doi).resolve(spec)
        assert resolved.version == "102"
        assert resolved.resolved_spec == "10.5281/zenodo.102"
        assert resolved.repo_url == "10.5281/zenodo.100"  # as given, as BinderHub does
        assert resolved.slug == "zenodo-102"


async def test_zenodo_fetch_gives_the_records_files(zenodo, doi, tmp_path):
    zenodo.publish("101", {"Dockerfile": b"FROM base\n", "src/analysis.py": b"print(1)\n"})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    lines = []
    assert await fetch(resolved, tmp_path, lines.append) == {
        "Dockerfile": b"FROM base\n", "src/analysis.py": b"print(1)\n"}
    assert any("Fetching Zenodo record 101" in line for line in lines)  # repo2docker's own


async def test_zenodo_fetch_keeps_the_resolved_version_when_a_new_one_appears(zenodo, doi,
                                                                             tmp_path):
    zenodo.publish("101", {"README.md": b"one"}, concept="100")
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.100")
    zenodo.publish("102", {"README.md": b"two"}, concept="100")
    assert await fetch(resolved, tmp_path) == {"README.md": b"one"}


async def test_zenodo_one_zip_is_unpacked_and_its_top_folder_flattened(zenodo, doi, tmp_path):
    bundle = zip_of({"project-1.0/Dockerfile": b"FROM base\n",
                     "project-1.0/data/table.csv": b"a,b\n"})
    zenodo.publish("101", {"project-1.0.zip": bundle})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    assert await fetch(resolved, tmp_path) == {"Dockerfile": b"FROM base\n",
                                               "data/table.csv": b"a,b\n"}


@pytest.mark.parametrize("spec", ["zenodo.101", "10.5281", "10.x/zenodo.1", "10.5281/ a"])
async def test_zenodo_refuses_what_is_no_doi(zenodo, doi, spec):
    with pytest.raises(InputError) as e:
        await zenodo_provider(zenodo, doi).resolve(spec)
    assert (e.value.field, e.value.status) == ("spec", 400)
    assert doi.asked == []


async def test_zenodo_refuses_missing_records(zenodo, doi, figshare):
    zenodo.publish("101", {"README.md": b"hello"})
    doi.add("10.5281/zenodo.555", f"{zenodo.url}/records/555")  # a DOI of no record
    figshare.publish("9782777", 1, {"README.md": b"elsewhere"})
    cases = {"10.5281/zenodo.999": "does not exist",  # no such DOI
             "10.5281/zenodo.555": "no record",
             "10.6084/m9.figshare.9782777.v1": "is not a Zenodo record"}
    for spec, message in cases.items():
        with pytest.raises(InputError) as e:
            await zenodo_provider(zenodo, doi).resolve(spec)
        assert (e.value.field, e.value.status) == ("spec", 422), spec
        assert message in e.value.message, spec
    assert (await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")).version == "101"


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "ABSOLUTE",
                                  "sub\\..\\..\\escape.txt"])
async def test_zenodo_refuses_file_names_outside_the_folder(zenodo, doi, tmp_path, name):
    outside = tmp_path / "outside"
    name = str(outside / "escape.txt") if name == "ABSOLUTE" else name
    zenodo.publish("101", {"README.md": b"hello", name: b"owned"})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    with pytest.raises(UnsafeName, match="escape.txt"):
        await fetch(resolved, tmp_path / "deep")
    assert not (tmp_path / "escape.txt").exists() and not outside.exists()
    assert os.listdir(tmp_path) == ["deep"] and os.listdir(tmp_path / "deep") == []
    # control: the same record with a plain name is fetched
    zenodo.publish("102", {"README.md": b"hello", "sub/escape.txt": b"fine"})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.102")
    assert await fetch(resolved, tmp_path / "control") == {"README.md": b"hello",
                                                           "sub/escape.txt": b"fine"}


@pytest.mark.parametrize("hostile", [
    {"files": {"top/../../escape.txt": b"owned"}},
    {"files": {"{outside}/escape.txt": b"owned"}},
    {"links": {"top/link": "/etc"}},
    {"links": {"top/link": "../.."}, "files": {"top/link/escape.txt": b"owned"}},
])
async def test_zenodo_refuses_zips_that_reach_outside(zenodo, doi, tmp_path, hostile):
    fine = {"top/Dockerfile": b"FROM base\n"}
    hostile_files = outside_names(hostile.get("files", {}), tmp_path)
    zenodo.publish("101", {"bundle.zip": zip_of({**fine, **hostile_files},
                                                hostile.get("links"))})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    with pytest.raises(UnsafeName):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    zenodo.publish("102", {"bundle.zip": zip_of(fine)})  # control
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.102")
    assert await fetch(resolved, tmp_path / "control") == {"Dockerfile": b"FROM base\n"}


async def test_zenodo_download_cap(zenodo, doi, tmp_path):
    zenodo.publish("101", {"a.bin": b"a" * 3000, "b.bin": b"b" * 3000})
    provider = zenodo_provider(zenodo, doi, max_download_bytes=5000)
    resolved = await provider.resolve("10.5281/zenodo.101")
    with pytest.raises(RecordTooLarge, match="max_download_bytes"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    provider.max_download_bytes = 6000  # control: just enough
    assert len(await fetch(resolved, tmp_path)) == 2


async def test_zenodo_unpacking_counts_against_the_cap(zenodo, doi, tmp_path):
    """A zip of 1 MB of zeros is a few kB: the cap applies to what it unpacks to."""
    zenodo.publish("101", {"bundle.zip": zip_of({"zeros.bin": bytes(1024**2)})})
    provider = zenodo_provider(zenodo, doi, max_download_bytes=512 * 1024)
    resolved = await provider.resolve("10.5281/zenodo.101")
    assert len(zenodo.records["101"]["bundle.zip"]) < 512 * 1024
    with pytest.raises(RecordTooLarge):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    provider.max_download_bytes = 2 * 1024**2
    assert await fetch(resolved, tmp_path) == {"zeros.bin": bytes(1024**2)}


async def test_zenodo_a_zip_counts_once(zenodo, doi, tmp_path):
    """The downloaded zip is deleted once unpacked: its content, not both, is counted."""
    noise = os.urandom(200_000)  # does not compress
    zenodo.publish("101", {"bundle.zip": zip_of({"noise.bin": noise})})
    provider = zenodo_provider(zenodo, doi, max_download_bytes=300_000)
    resolved = await provider.resolve("10.5281/zenodo.101")
    assert await fetch(resolved, tmp_path) == {"noise.bin": noise}
    provider.max_download_bytes = 199_999  # control: the content alone is too much
    with pytest.raises(RecordTooLarge):
        await fetch(resolved, tmp_path / "control")


def test_files_are_never_written_through_a_link(tmp_path):
    """Nothing a fetch writes is a link, so this guards against a bug, not an archive:
    a link already in the folder is refused as a folder and as a file."""
    dest, outside = tmp_path / "repo", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "folder").symlink_to(outside)
    (dest / "file").symlink_to(outside / "file")
    files = Files(str(dest), 1000, print)
    for name in ("folder/x.txt", "file", "folder"):
        with pytest.raises(UnsafeName):
            files.path_for(name, folder=name == "folder")
    assert files.path_for("plain/x.txt") == str(dest / "plain" / "x.txt")  # control
    assert os.listdir(outside) == []


async def test_zenodo_record_removed_or_replaced_after_resolving(zenodo, doi, tmp_path):
    zenodo.publish("101", {"README.md": b"one"})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    zenodo.gone.add("101")
    with pytest.raises(RecordChanged, match="no longer exists"):
        await fetch(resolved, tmp_path)
    zenodo.gone.clear()
    zenodo.answers_as["101"] = "103"  # the API now answers for record 101 with another
    with pytest.raises(RecordChanged, match="version 101, it is now 103"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    zenodo.answers_as.clear()
    assert await fetch(resolved, tmp_path) == {"README.md": b"one"}


async def test_fetch_errors_are_build_failures_that_say_why(zenodo, doi, tmp_path):
    """The build queue reports a BuildFailed's message as it is."""
    zenodo.publish("101", {"README.md": b"one"})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    zenodo.close()
    with pytest.raises(BuildFailed, match=f"Zenodo could not be reached at {zenodo.url}"):
        await fetch(resolved, tmp_path)


# -- Figshare ----------------------------------------------------------------------------

async def test_figshare_resolves_a_versioned_doi(figshare, doi):
    figshare.publish("9782777", 1, {"README.md": b"one"})
    figshare.publish("9782777", 2, {"README.md": b"two"})
    resolved = await figshare_provider(figshare, doi).resolve("10.6084/m9.figshare.9782777.v1")
    assert (resolved.provider, resolved.version) == ("figshare", "9782777.v1")
    assert resolved.resolved_spec == "10.6084/m9.figshare.9782777.v1"
    assert resolved.repo_url == "10.6084/m9.figshare.9782777.v1"
    assert resolved.ref_url == f"{doi.url}/10.6084/m9.figshare.9782777.v1"
    assert resolved.slug == "figshare-9782777.v1"


async def test_figshare_unversioned_doi_resolves_to_the_latest_version(figshare, doi, tmp_path):
    figshare.publish("9782777", 1, {"README.md": b"one"})
    figshare.publish("9782777", 2, {"README.md": b"two"})
    resolved = await figshare_provider(figshare, doi).resolve("10.6084/m9.figshare.9782777")
    assert resolved.version == "9782777.v2"
    assert resolved.resolved_spec == "10.6084/m9.figshare.9782777.v2"
    assert resolved.repo_url == "10.6084/m9.figshare.9782777"
    assert resolved.slug == "figshare-9782777.v2"
    assert await fetch(resolved, tmp_path) == {"README.md": b"two"}


async def test_figshare_fetch_gives_exactly_the_resolved_version(figshare, doi, tmp_path):
    figshare.publish("9782777", 1, {"Dockerfile": b"FROM one\n", "notes.txt": b"v1"})
    resolved = await figshare_provider(figshare, doi).resolve("10.6084/m9.figshare.9782777")
    figshare.publish("9782777", 2, {"Dockerfile": b"FROM two\n"})  # published meanwhile
    assert await fetch(resolved, tmp_path) == {"Dockerfile": b"FROM one\n", "notes.txt": b"v1"}


async def test_figshare_one_zip_is_unpacked(figshare, doi, tmp_path):
    figshare.publish("9782777", 1, {"code.zip": zip_of({"code/Dockerfile": b"FROM base\n"})})
    resolved = await figshare_provider(figshare, doi).resolve("10.6084/m9.figshare.9782777.v1")
    assert await fetch(resolved, tmp_path) == {"Dockerfile": b"FROM base\n"}


async def test_figshare_refuses_bad_specs_and_missing_articles(figshare, doi, zenodo):
    figshare.publish("9782777", 1, {"README.md": b"one"})
    doi.add("10.6084/m9.figshare.9782777.v7", f"{figshare.url}/articles/code/example/9782777/7")
    zenodo.publish("101", {"README.md": b"hello"})
    provider = figshare_provider(figshare, doi)
    for spec in ("10.6084/m9.figshare", "figshare.9782777", "10.6084/m9.figshare.x.v1"):
        with pytest.raises(InputError) as e:
            await provider.resolve(spec)
        assert (e.value.field, e.value.status) == ("spec", 400), spec
    cases = {"10.6084/m9.figshare.9782777.v7": "has no version 7 (it has 1)",
             "10.6084/m9.figshare.9782777.v8": "does not exist",  # no such DOI
             "10.6084/m9.figshare.1111111": "does not exist",
             "10.5281/zenodo.101": "is not a Figshare record"}
    for spec, message in cases.items():
        with pytest.raises(InputError) as e:
            await provider.resolve(spec)
        assert (e.value.field, e.value.status) == ("spec", 422), spec
        assert message in e.value.message, spec


async def test_figshare_refuses_names_outside_the_folder(figshare, doi, tmp_path):
    figshare.publish("9782777", 1, {"README.md": b"one", "../../escape.txt": b"owned"})
    figshare.publish("9782777", 2, {"README.md": b"one", "escape.txt": b"fine"})
    provider = figshare_provider(figshare, doi)
    resolved = await provider.resolve("10.6084/m9.figshare.9782777.v1")
    with pytest.raises(UnsafeName):
        await fetch(resolved, tmp_path / "a" / "b")
    assert files_in(tmp_path) == {} and not os.path.exists(tmp_path / "a" / "b" / "repo")
    resolved = await provider.resolve("10.6084/m9.figshare.9782777.v2")
    assert await fetch(resolved, tmp_path) == {"README.md": b"one", "escape.txt": b"fine"}


async def test_figshare_download_cap(figshare, doi, tmp_path):
    figshare.publish("9782777", 1, {"big.bin": b"x" * 10_000})
    provider = figshare_provider(figshare, doi, max_download_bytes=9_999)
    resolved = await provider.resolve("10.6084/m9.figshare.9782777.v1")
    with pytest.raises(RecordTooLarge):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    provider.max_download_bytes = 10_000
    assert await fetch(resolved, tmp_path) == {"big.bin": b"x" * 10_000}


async def test_figshare_version_withdrawn_after_resolving(figshare, doi, tmp_path):
    figshare.publish("9782777", 1, {"README.md": b"one"})
    figshare.publish("9782777", 2, {"README.md": b"two"})
    resolved = await figshare_provider(figshare, doi).resolve("10.6084/m9.figshare.9782777.v1")
    figshare.withdrawn.add(("9782777", 1))
    with pytest.raises(RecordChanged, match="no longer exists"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    figshare.withdrawn.clear()
    assert await fetch(resolved, tmp_path) == {"README.md": b"one"}


# -- Dataverse ---------------------------------------------------------------------------

async def test_dataverse_resolves_a_dataset_doi(dataverse, doi):
    dataverse.publish("10.5072/FK2/ABC", (3, 1), {"README.md": b"hello"}, dataset_id=3035124)
    resolved = await dataverse_provider(doi).resolve("10.5072/FK2/ABC")
    assert (resolved.provider, resolved.version) == ("dataverse", "3035124.v3.1")
    assert resolved.resolved_spec == "10.5072/FK2/ABC"
    assert resolved.repo_url == "10.5072/FK2/ABC"
    assert resolved.ref_url == "https://doi.org/10.5072/FK2/ABC"  # the dataset's persistentUrl
    assert resolved.slug == "dataverse-fk2-2fabc"


async def test_dataverse_fetch_gives_the_files_in_their_folders(dataverse, doi, tmp_path):
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"Dockerfile": b"FROM base\n",
                                                  "data/raw/table.csv": b"a,b\n"})
    resolved = await dataverse_provider(doi).resolve("10.5072/FK2/ABC")
    assert await fetch(resolved, tmp_path) == {"Dockerfile": b"FROM base\n",
                                               "data/raw/table.csv": b"a,b\n"}


async def test_dataverse_refuses_bad_specs_missing_datasets_and_other_hosts(dataverse, doi):
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"README.md": b"hello"})
    doi.add("10.5072/FK2/GONE", f"{dataverse.url}/citation?persistentId=doi:10.5072/FK2/GONE")
    with pytest.raises(InputError) as e:
        await dataverse_provider(doi).resolve("FK2/ABC")
    assert (e.value.field, e.value.status) == ("spec", 400)
    for spec, message in {"10.5072/FK2/NONE": "does not exist",
                          "10.5072/FK2/GONE": "has no dataset doi:10.5072/FK2/GONE"}.items():
        with pytest.raises(InputError) as e:
            await dataverse_provider(doi).resolve(spec)
        assert (e.value.field, e.value.status) == ("spec", 422), spec
        assert message in e.value.message
    elsewhere = dataverse_provider(doi, installations=["https://dataverse.harvard.edu"])
    with pytest.raises(InputError) as e:
        await elsewhere.resolve("10.5072/FK2/ABC")
    assert e.value.status == 422 and "not one of the Dataverse installations" in e.value.message
    allowed = dataverse_provider(doi, installations=["https://dataverse.harvard.edu",
                                                     dataverse.url + "/"])
    assert (await allowed.resolve("10.5072/FK2/ABC")).version == "4242.v1.0"


@pytest.mark.parametrize("name", ["../../escape.txt", "{outside}/escape.txt", "../escape.txt"])
async def test_dataverse_refuses_folders_outside(dataverse, doi, tmp_path, name):
    name = name.format(outside=tmp_path / "outside")
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"README.md": b"hello", name: b"owned"})
    resolved = await dataverse_provider(doi).resolve("10.5072/FK2/ABC")
    with pytest.raises(UnsafeName):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"README.md": b"hello", "x/escape.txt": b"ok"})
    assert await fetch(resolved, tmp_path) == {"README.md": b"hello", "x/escape.txt": b"ok"}


async def test_dataverse_download_cap(dataverse, doi, tmp_path):
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"a.bin": b"a" * 4000, "b.bin": b"b" * 4000})
    provider = dataverse_provider(doi, max_download_bytes=7000)
    resolved = await provider.resolve("10.5072/FK2/ABC")
    with pytest.raises(RecordTooLarge):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    provider.max_download_bytes = 8000
    assert len(await fetch(resolved, tmp_path)) == 2


async def test_dataverse_new_version_before_the_fetch_is_refused(dataverse, doi, tmp_path):
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"README.md": b"one"})
    resolved = await dataverse_provider(doi).resolve("10.5072/FK2/ABC")
    dataverse.publish("10.5072/FK2/ABC", (2, 0), {"README.md": b"two"})
    with pytest.raises(RecordChanged, match="version 4242.v1.0, it is now 4242.v2.0"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    assert not any("datafile" in path for path in dataverse.asked)  # refused before


async def test_dataverse_new_version_during_the_download_is_refused(dataverse, doi, tmp_path):
    """Dataverse serves its latest version's files: a version published while they are
    downloaded would mix two versions."""
    dataverse.publish("10.5072/FK2/ABC", (1, 0), {"README.md": b"one", "b.txt": b"one"})
    resolved = await dataverse_provider(doi).resolve("10.5072/FK2/ABC")

    def publish_once():
        dataverse.on_download = lambda: None
        dataverse.publish("10.5072/FK2/ABC", (1, 1), {"README.md": b"two", "b.txt": b"two"})

    dataverse.on_download = publish_once
    with pytest.raises(RecordChanged, match="while it was downloaded"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    assert sum("datafile" in path for path in dataverse.asked) == 2  # the files were fetched


# -- HydroShare --------------------------------------------------------------------------

async def test_hydroshare_resolves_ids_urls_and_dois(hydroshare):
    hydroshare.publish(ID, "2024-01-02T03:04:05.123456Z", {"README.md": b"hello"})
    provider = hydroshare_provider(hydroshare)
    for spec in (ID, quoted(f"https://www.hydroshare.org/resource/{ID}/"),
                 quoted(f"10.4211/hs.{ID}")):
        resolved = await provider.resolve(spec)
        assert (resolved.provider, resolved.spec) == ("hydroshare", spec)
        assert resolved.version == f"{ID}.v1704164645"
        url = f"{hydroshare.url}/resource/{ID}"
        assert (resolved.resolved_spec, resolved.repo_url, resolved.ref_url) == (url, url, url)
        assert resolved.slug == f"hydroshare-{ID}.v1704164645"


async def test_hydroshare_fetch_waits_for_the_bag_and_keeps_its_contents(hydroshare, tmp_path):
    hydroshare.publish(ID, "2024-01-02T03:04:05.1Z", {"Dockerfile": b"FROM base\n",
                                                      "notebooks/a.ipynb": b"{}"})
    hydroshare.preparing = 2
    resolved = await hydroshare_provider(hydroshare).resolve(ID)
    lines = []
    assert await fetch(resolved, tmp_path, lines.append) == {"Dockerfile": b"FROM base\n",
                                                             "notebooks/a.ipynb": b"{}"}
    assert sum("being prepared" in line for line in lines) == 2
    assert hydroshare.preparing == 0


async def test_hydroshare_gives_up_on_a_bag_that_is_never_ready(hydroshare, tmp_path):
    hydroshare.publish(ID, "2024-01-02T03:04:05.1Z", {"README.md": b"hello"})
    hydroshare.preparing = 1000
    provider = hydroshare_provider(hydroshare, bag_timeout=0.2, bag_poll_interval=0.05)
    resolved = await provider.resolve(ID)
    with pytest.raises(FetchFailed, match="did not prepare the bag"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    assert 2 <= 1000 - hydroshare.preparing <= 6


async def test_hydroshare_refuses_bad_specs_and_missing_resources(hydroshare):
    provider = hydroshare_provider(hydroshare)
    for spec in ("8f7c2f03", quoted("https://www.hydroshare.org/resource/x"), ID + "0"):
        with pytest.raises(InputError) as e:
            await provider.resolve(spec)
        assert (e.value.field, e.value.status) == ("spec", 400), spec
    with pytest.raises(InputError) as e:
        await provider.resolve(ID)
    assert (e.value.field, e.value.status) == ("spec", 422)
    assert "no public resource" in e.value.message


@pytest.mark.parametrize("hostile", [
    {"files": {f"{ID}/data/contents/../../../../escape.txt": b"owned"}},
    {"files": {f"{ID}/data/contents/" + "{outside}/escape.txt": b"owned"}},
    {"links": {f"{ID}/data/contents/link": "/etc"}},
])
async def test_hydroshare_refuses_bags_that_reach_outside(hydroshare, tmp_path, hostile):
    hydroshare.publish(ID, "2024-01-02T03:04:05.1Z", {})
    fine = {f"{ID}/data/contents/README.md": b"hello"}
    hostile_files = outside_names(hostile.get("files", {}), tmp_path)
    hydroshare.bags[ID] = zip_of({**fine, **hostile_files}, hostile.get("links"))
    resolved = await hydroshare_provider(hydroshare).resolve(ID)
    with pytest.raises(UnsafeName):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    hydroshare.bags[ID] = zip_of(fine)
    assert await fetch(resolved, tmp_path) == {"README.md": b"hello"}


async def test_hydroshare_download_cap(hydroshare, tmp_path):
    hydroshare.publish(ID, "2024-01-02T03:04:05.1Z", {"zeros.bin": bytes(300_000)})
    provider = hydroshare_provider(hydroshare, max_download_bytes=200_000)
    resolved = await provider.resolve(ID)
    with pytest.raises(RecordTooLarge):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    provider.max_download_bytes = 400_000
    assert await fetch(resolved, tmp_path) == {"zeros.bin": bytes(300_000)}


async def test_hydroshare_change_after_resolving_is_refused(hydroshare, tmp_path):
    hydroshare.publish(ID, "2024-01-02T03:04:05.1Z", {"README.md": b"one"})
    resolved = await hydroshare_provider(hydroshare).resolve(ID)
    hydroshare.publish(ID, "2024-02-02T03:04:05.1Z", {"README.md": b"two"})
    with pytest.raises(RecordChanged, match=f"now {ID}.v1706843045"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    assert not any("bags" in path for path in hydroshare.asked)


# -- CKAN --------------------------------------------------------------------------------

async def test_ckan_resolves_a_dataset_url(ckan):
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"README.md": b"hello"})
    url = f"{ckan.site}/dataset/sample"
    resolved = await ckan_provider().resolve(quoted(url))
    assert (resolved.provider, resolved.spec) == ("ckan", quoted(url))
    assert resolved.version == "sample.v1704164645"
    assert (resolved.resolved_spec, resolved.repo_url, resolved.ref_url) == (url, url, url)
    assert resolved.slug == "ckan-sample"


async def test_ckan_fetch_gives_the_resources(ckan, tmp_path):
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"Dockerfile": b"FROM base\n",
                                                          "table.csv": b"a,b\n"})
    resolved = await ckan_provider().resolve(quoted(f"{ckan.site}/dataset/sample"))
    assert await fetch(resolved, tmp_path) == {"Dockerfile": b"FROM base\n",
                                               "table.csv": b"a,b\n"}


@pytest.mark.parametrize("form", ["{site}/dataset/sample/history/act-1",
                                  "{site}/dataset/sample?activity_id=act-1"])
async def test_ckan_activity_links_are_that_version(ckan, tmp_path, form):
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"README.md": b"old"})
    ckan.record_activity("sample", "act-1")
    ckan.publish("sample", "2024-03-02T03:04:05.123456", {"README.md": b"new"})
    resolved = await ckan_provider().resolve(quoted(form.format(site=ckan.site)))
    assert resolved.version == "sample.v1704164645"
    assert await fetch(resolved, tmp_path) == {"README.md": b"old"}


async def test_ckan_refuses_bad_specs_missing_datasets_and_other_sites(ckan):
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"README.md": b"hello"})
    for url in (f"{ckan.site}/sample", "ftp://example.org/dataset/sample",
                f"{ckan.site}/dataset/", f"{ckan.site}/dataset/a%20b"):
        with pytest.raises(InputError) as e:
            await ckan_provider().resolve(quoted(url))
        assert (e.value.field, e.value.status) == ("spec", 400), url
    with pytest.raises(InputError) as e:
        await ckan_provider().resolve(quoted(f"{ckan.site}/dataset/missing"))
    assert (e.value.field, e.value.status) == ("spec", 422)
    other = ckan_provider(installations=["https://demo.ckan.org"])
    with pytest.raises(InputError) as e:
        await other.resolve(quoted(f"{ckan.site}/dataset/sample"))
    assert e.value.status == 422 and "not one of the CKAN sites" in e.value.message
    assert (await ckan_provider(installations=[ckan.site]).resolve(
        quoted(f"{ckan.site}/dataset/sample"))).version == "sample.v1704164645"


@pytest.mark.parametrize("resource_id", ["../../escape.txt", "{outside}/escape.txt", ".."])
async def test_ckan_refuses_resource_names_outside_the_folder(ckan, tmp_path, resource_id):
    """A resource whose URL ends in '/' is named after its id (repo2docker's rule)."""
    resource_id = resource_id.format(outside=tmp_path / "outside")
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"README.md": b"hello"})
    ckan.downloads[""] = b"owned"
    hostile = {"id": resource_id, "name": "x", "url": f"{ckan.site}/files/"}
    ckan.datasets["sample"]["resources"].append(hostile)
    resolved = await ckan_provider().resolve(quoted(f"{ckan.site}/dataset/sample"))
    with pytest.raises(UnsafeName):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    hostile["id"] = "escape.txt"  # control
    assert await fetch(resolved, tmp_path) == {"README.md": b"hello", "escape.txt": b"owned"}


async def test_ckan_download_cap(ckan, tmp_path):
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"big.bin": b"x" * 200_000})
    provider = ckan_provider(max_download_bytes=150_000)
    resolved = await provider.resolve(quoted(f"{ckan.site}/dataset/sample"))
    with pytest.raises(RecordTooLarge):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    provider.max_download_bytes = 200_000
    assert await fetch(resolved, tmp_path) == {"big.bin": b"x" * 200_000}


async def test_ckan_change_after_resolving_is_refused(ckan, tmp_path):
    ckan.publish("sample", "2024-01-02T03:04:05.123456", {"README.md": b"one"})
    resolved = await ckan_provider().resolve(quoted(f"{ckan.site}/dataset/sample"))
    ckan.publish("sample", "2024-01-02T03:04:06.000000", {"README.md": b"two"})
    with pytest.raises(RecordChanged, match="sample.v1704164646"):
        await fetch(resolved, tmp_path)
    only_repo_in(tmp_path)
    assert not any("/files/" in path for path in ckan.asked)


# -- the fetch as the build queue runs it --------------------------------------------------

async def test_a_cancelled_fetch_stops_its_thread(zenodo, doi, tmp_path):
    """Cancelling (the queue's timeout, a user's cancel) stops the download thread at its
    next chunk instead of letting it fill the disk in the background."""
    zenodo.publish("101", {"big.bin": bytes(64 * 1024 * 100)})
    resolved = await zenodo_provider(zenodo, doi).resolve("10.5281/zenodo.101")
    zenodo.pace = 0.05  # 100 chunks: 5 s
    downloading = asyncio.Event()
    task = asyncio.create_task(resolved.source.fetch(
        resolved.version, str(tmp_path / "repo"),
        lambda line: "Downloading" in line and downloading.set()))
    await downloading.wait()
    await asyncio.sleep(0.2)
    assert os.listdir(tmp_path / "repo")  # under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(40):  # the thread notices at its next chunk and removes the folder
        if not (tmp_path / "repo").exists():
            break
        await asyncio.sleep(0.05)
    assert not (tmp_path / "repo").exists()
