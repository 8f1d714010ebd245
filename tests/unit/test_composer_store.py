"""Specs as versioned git repositories: versions, failed saves, forks, zips, imports."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from tljh_rees.composer.archive import Limits, read_folder, read_zip
from tljh_rees.composer.errors import SpecError
from tljh_rees.composer.service import Composer, InvalidSpec


@pytest.fixture
def composer(tmp_path):
    return Composer(str(tmp_path / "specs"))


def make_zip(entries) -> bytes:
    """``entries``: (name, content, unix mode) triples."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, content)
    return buffer.getvalue()


LIMITS = Limits(max_files=10, max_file_bytes=1000, max_total_bytes=3000)


def test_every_save_is_a_version(composer):
    first = composer.create("s", "alice", {"requirements": "numpy\n"}, display_name="S")
    second = composer.save("s", "alice", {"requirements": "numpy\npandas\n"},
                           base_version=first["version"], message="add pandas")
    third = composer.save("s", "bob", {"requirements": "pandas\n", "apt": "curl\n"})
    history = composer.store.history("s")
    assert [v["version"] for v in history] == [third["version"], second["version"],
                                               first["version"]]
    assert [v["author"] for v in history] == ["bob", "alice", "alice"]
    assert history[1]["message"] == "add pandas"
    # old versions stay readable, by full or short sha
    old = composer.spec("s", first["version"][:10])
    assert old["version"] == first["version"]
    assert old["sections"]["requirements"] == "numpy\n" and old["sections"]["apt"] == ""
    assert old["newest_version"] == third["version"]
    assert composer.spec("s")["display_name"] == "S"
    # saving the same content again makes no new version
    assert composer.save("s", "bob", {"requirements": "pandas\n", "apt": "curl\n"})[
        "version"] == third["version"]
    with pytest.raises(SpecError) as e:
        composer.spec("s", "0" * 40)
    assert e.value.status == 404


def test_a_failed_save_leaves_the_previous_version_intact(composer):
    spec = composer.create("s", "alice", {"requirements": "numpy\n", "apt": "curl\n"})
    version = spec["version"]

    def unchanged():
        now = composer.spec("s")
        assert now["version"] == version
        assert now["sections"]["requirements"] == "numpy\n" and now["sections"]["apt"] == "curl\n"
        assert len(composer.store.history("s")) == 1

    with pytest.raises(InvalidSpec) as e:  # validation errors block the save
        composer.save("s", "alice", {"requirements": "numpy\npandas=2\n", "apt": "wget\n"})
    assert e.value.status == 422 and "requirements.txt line 2" in e.value.message
    assert [(p.section, p.line) for p in e.value.problems if p.severity == "error"] == [
        ("requirements", 2)]
    unchanged()

    composer.store.max_file_bytes = 100  # over a limit, found while writing the new tree
    with pytest.raises(SpecError) as e:
        composer.save("s", "alice", {"requirements": "numpy\n" + "# x\n" * 100})
    assert e.value.status == 413
    composer.store.max_file_bytes = 20 * 1024**2
    unchanged()

    with pytest.raises(SpecError) as e:  # someone saved since the version we edited
        composer.save("s", "alice", {"requirements": "scipy\n"}, base_version="1" * 40)
    assert e.value.status == 409
    unchanged()

    # two saves racing from the same version: the second one's compare-and-swap of
    # main fails, and main keeps the first one's version
    winner = composer.save("s", "bob", {"requirements": "scipy\n"})["version"]
    repo = composer.store.repo("s")
    with pytest.raises(SpecError) as e:
        composer.store._commit(repo, {"requirements.txt": b"late\n"}, "carol", "late",
                               head=version, base_tree=version)
    assert e.value.status == 409
    assert composer.spec("s")["version"] == winner
    assert composer.spec("s")["sections"]["requirements"] == "scipy\n"


def test_fork_of_a_spec_has_its_own_history(composer):
    original = composer.create("orig", "alice", {"requirements": "numpy\n"})
    composer.save("orig", "alice", {"requirements": "numpy\nscipy\n"})
    source = composer.store.resolve("orig", original["version"])
    fork = composer.fork("copy", "bob", (composer.store.path("orig"), source, "main"),
                         "spec orig")
    assert fork["owner"] == "bob" and fork["forked_from"] == "spec orig"
    assert fork["sections"]["requirements"] == "numpy\n"  # the version asked for
    assert len(composer.store.history("copy")) == 1
    composer.save("copy", "bob", {"requirements": "pandas\n"})
    assert composer.spec("orig")["sections"]["requirements"] == "numpy\nscipy\n"


def test_fork_of_a_git_repository_at_an_older_commit(composer, git_repo):
    repo = git_repo()
    old = repo.commit({"requirements.txt": "numpy\n", "notebooks/a.ipynb": "{}",
                       "postBuild": "#!/bin/bash\necho hi\n"})
    repo.git("update-index", "--chmod=+x", "postBuild")
    repo.git("commit", "-q", "-m", "exec")
    old = repo.git("rev-parse", "HEAD")
    repo.commit({"requirements.txt": "pandas\n"})
    fork = composer.fork("forked", "carol", (repo.url, old, "main"), "environment e")
    assert fork["sections"]["requirements"] == "numpy\n"
    files = {f["path"]: f for f in fork["files"]}
    assert set(files) == {"requirements.txt", "notebooks/a.ipynb", "postBuild"}
    assert files["postBuild"]["executable"]
    with pytest.raises(SpecError) as e:
        composer.fork("missing", "carol", (repo.url, "f" * 40, "main"), "environment e")
    assert e.value.status == 502 and not composer.store.exists("missing")


def test_symbolic_links_of_a_fork_are_never_followed(composer, git_repo, tmp_path):
    """A forked repository may link to files of this machine: previews skip links."""
    import asyncio

    repo = git_repo()
    os.symlink("/etc/passwd", os.path.join(repo.path, "Dockerfile"))
    os.symlink("/etc/passwd", os.path.join(repo.path, "requirements.txt"))
    sha = repo.commit({"apt.txt": "curl\n"})
    spec = composer.fork("links", "carol", (repo.url, sha, "main"), "environment e")
    assert spec["sections"]["dockerfile"] == "" and spec["sections"]["requirements"] == ""
    dest = tmp_path / "checkout"
    dest.mkdir()
    composer.store.checkout("links", None, str(dest))
    assert sorted(os.listdir(dest)) == ["apt.txt"]
    result = asyncio.run(composer.preview(spec="links"))
    assert result["buildpack"] == "PythonBuildPack"
    assert "root:" not in (result["dockerfile"] or "")


def test_zip_round_trip_builds_as_is(composer, tmp_path):
    composer.create("z", "alice", {"requirements": "numpy\n", "apt": "curl\n",
                                   "postBuild": "#!/bin/bash\necho hi\n",
                                   "extensions": "jupyterlab-git\n"})
    composer.store.save("z", {"data/table.csv": b"a,b\n1,2\n"}, "alice")
    version, data = composer.store.zip("z")
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    assert names == ["z/apt.txt", "z/data/table.csv", "z/jupyter-extensions.txt",
                     "z/postBuild", "z/requirements.txt"]
    assert (archive.getinfo("z/postBuild").external_attr >> 16) & stat.S_IXUSR

    # unzipped, repo2docker builds it as it is: same Dockerfile as the stored version
    unzipped = tmp_path / "unzipped"
    subprocess.run(["unzip", "-q", "-", "-d", str(unzipped)], input=data, check=False)
    if not (unzipped / "z").exists():  # no unzip tool: extract with permissions by hand
        for info in archive.infolist():
            target = unzipped / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod((info.external_attr >> 16) & 0o777)
    stored = tmp_path / "stored"
    stored.mkdir()
    composer.store.checkout("z", version, str(stored))

    def dockerfile(path):
        return subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--user-id",
                               "1000", "--user-name", "jovyan", str(path)],
                              capture_output=True, text=True, check=True).stdout

    assert "RUN ./postBuild" in dockerfile(unzipped / "z")
    strip = lambda text: [l for l in text.splitlines() if not l.startswith("LABEL")]  # noqa
    assert strip(dockerfile(unzipped / "z")) == strip(dockerfile(stored))

    # and imported back, it is the same spec again
    imported = read_zip(data, composer.limits())
    again = composer.import_files("z2", "bob", imported, replace=False)
    assert [(f["path"], f["size"], f["executable"]) for f in again["files"]] == [
        (f["path"], f["size"], f["executable"]) for f in composer.spec("z")["files"]]
    assert again["sections"] == composer.spec("z")["sections"]


def test_import_replaces_all_files_as_a_new_version(composer):
    composer.create("r", "alice", {"requirements": "numpy\n", "apt": "curl\n"})
    imported = read_zip(make_zip([("proj/requirements.txt", b"pandas\n", 0o100644),
                                  ("proj/run.sh", b"#!/bin/sh\n", 0o100755)]), LIMITS)
    spec = composer.import_files("r", "alice", imported, replace=True)
    assert {f["path"]: f["executable"] for f in spec["files"]} == {
        "requirements.txt": False, "run.sh": True}
    assert len(composer.store.history("r")) == 2


@pytest.mark.parametrize("entries,fragment", [
    ([("../evil.txt", b"x", 0o100644)], "outside"),
    ([("ok/../../evil.txt", b"x", 0o100644)], "outside"),
    ([("/etc/passwd", b"x", 0o100644)], "absolute"),
    ([("C:/x.txt", b"x", 0o100644)], "absolute"),
    ([("a\\..\\..\\x", b"x", 0o100644)], "absolute or Windows"),
    ([("link", b"/etc/passwd", 0o120777)], "symbolic links"),
    ([("dev", b"", 0o020644)], "regular files"),
    ([(".git/config", b"x", 0o100644)], ".git"),
    ([("big.bin", b"x" * 1001, 0o100644)], "larger than 1000"),
    ([(f"f{i}", b"x", 0o100644) for i in range(11)], "more than 10 files"),
    ([(f"f{i}", b"x" * 900, 0o100644) for i in range(4)], "more than 3000 bytes"),
    ([], "nothing to import"),
])
def test_bad_zips_are_refused(entries, fragment):
    with pytest.raises(SpecError) as e:
        read_zip(make_zip(entries), LIMITS)
    assert fragment in e.value.message


def test_not_a_zip_and_a_lying_zip():
    with pytest.raises(SpecError, match="not a zip"):
        read_zip(b"PK\x03\x04 not really", LIMITS)
    data = bytearray(make_zip([("a.txt", b"y" * 500, 0o100644)]))
    # claim 5 bytes in the central directory: the content read proves otherwise
    central = data.rindex(b"PK\x01\x02")
    data[central + 24:central + 28] = (5).to_bytes(4, "little")
    with pytest.raises(SpecError):
        read_zip(bytes(data), LIMITS)


def test_common_folder_is_stripped_but_binder_stays():
    wrapped = read_zip(make_zip([("repo-main/requirements.txt", b"x", 0o100644),
                                 ("repo-main/src/a.py", b"y", 0o100644)]), LIMITS)
    assert set(wrapped.files) == {"requirements.txt", "src/a.py"}
    binder = read_zip(make_zip([("binder/requirements.txt", b"x", 0o100644)]), LIMITS)
    assert set(binder.files) == {"binder/requirements.txt"}
    folder = read_folder([("myproj/requirements.txt", b"x"), ("myproj/nb/a.ipynb", b"{}")],
                         LIMITS)
    assert set(folder.files) == {"requirements.txt", "nb/a.ipynb"}
    with pytest.raises(SpecError, match="outside"):
        read_folder([("myproj/../../x", b"x")], LIMITS)


def test_names_and_conflicts(composer):
    with pytest.raises(SpecError) as e:
        composer.create("Bad Name", "alice", {})
    assert e.value.field == "name"
    with pytest.raises(SpecError, match="reserved"):
        composer.create("validate", "alice", {})
    composer.create("taken", "alice", {"apt": "curl\n"})
    with pytest.raises(SpecError) as e:
        composer.create("taken", "bob", {"apt": "git\n"})
    assert e.value.status == 409
    assert composer.spec("taken")["owner"] == "alice"
    assert [s["name"] for s in composer.list()] == ["taken"]
    assert not [n for n in os.listdir(composer.store.root) if n.startswith(".")]
