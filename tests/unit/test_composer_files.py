"""Each section becomes the file repo2docker expects: checked by repo2docker itself.

The spec is saved to its git repository, checked out, and given to the real
``repo2docker --no-build`` (its generated Dockerfile) and to the composer's preview
(repo2docker's own build-pack detection). R and Julia build packs ask the network while
rendering, so for them only the detection is checked.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys

import pytest

from tljh_rees.composer.service import Composer


@pytest.fixture
def composer(tmp_path):
    return Composer(str(tmp_path / "specs"))


def checkout(composer, name, tmp_path) -> str:
    dest = tmp_path / f"checkout-{name}"
    dest.mkdir()
    composer.store.checkout(name, None, str(dest))
    return str(dest)


def repo2docker_dockerfile(directory: str, *options: str) -> str:
    """What the real repo2docker command prints for ``--no-build`` (as the builder runs it)."""
    result = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build",
                             "--user-id", "1000", "--user-name", "jovyan", *options,
                             directory],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def without_labels(dockerfile: str) -> list[str]:
    return [line for line in dockerfile.strip().splitlines() if not line.startswith("LABEL ")]


def preview(composer, name):
    return asyncio.run(composer.preview(spec=name))


def test_python_sections_become_repo2docker_files(composer, tmp_path):
    composer.create("py", "alice", {
        "requirements": "numpy==2.1\n",
        "runtime": "python-3.12\n",
        "apt": "curl\nlibgdal-dev\n",
        "postBuild": "#!/bin/bash\necho user-step > user-step.txt\n",
        "start": '#!/bin/bash\nexport STARTED=1\nexec "$@"\n',
        "extensions": "jupyterlab-git\n",
    })
    directory = checkout(composer, "py", tmp_path)
    assert sorted(os.listdir(directory)) == sorted([
        "requirements.txt", "runtime.txt", "apt.txt", "postBuild", "start",
        "jupyter-extensions.txt"])
    with open(os.path.join(directory, "requirements.txt")) as f:
        assert f.read() == "numpy==2.1\n"  # exactly as typed
    for script in ("postBuild", "start"):
        assert os.stat(os.path.join(directory, script)).st_mode & stat.S_IXUSR

    dockerfile = repo2docker_dockerfile(directory)
    assert 'pip install --no-cache-dir -r "requirements.txt"' in dockerfile
    assert "apt-get install --yes --no-install-recommends curl libgdal-dev" in dockerfile
    assert "RUN ./postBuild" in dockerfile
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/start"' in dockerfile

    result = preview(composer, "py")
    assert result["buildpack"] == "PythonBuildPack" and result["error"] is None
    assert "Building conda environment for python=3.12" in result["messages"]
    # the same generated file, but for the metadata labels the command line adds
    assert without_labels(result["dockerfile"]) == without_labels(dockerfile)


def test_extensions_are_installed_by_postbuild_into_the_server_environment(composer,
                                                                           tmp_path):
    """Run the generated postBuild with bash, with a stand-in for the server's python."""
    composer.create("ext", "alice", {"extensions": "jupyterlab-git\n",
                                     "postBuild": "echo user-step > user-step.txt\n"})
    directory = checkout(composer, "ext", tmp_path)
    prefix = tmp_path / "nb-prefix"
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python"
    python.write_text('#!/bin/sh\necho "$@" > "$CALLS"\n')
    python.chmod(0o755)
    calls = tmp_path / "calls"
    subprocess.run(["./postBuild"], cwd=directory, check=True, timeout=30,
                   env={"PATH": os.environ["PATH"], "NB_PYTHON_PREFIX": str(prefix),
                        "CALLS": str(calls)})
    assert calls.read_text().split() == [
        "-m", "pip", "install", "--no-cache-dir", "-r", "./jupyter-extensions.txt"]
    assert (open(os.path.join(directory, "user-step.txt")).read() == "user-step\n")
    # and the sections read back exactly as they were typed
    spec = composer.spec("ext")
    assert spec["sections"]["extensions"] == "jupyterlab-git\n"
    assert spec["sections"]["postBuild"] == "echo user-step > user-step.txt\n"


def test_environment_yml_makes_requirements_ignored_as_the_composer_says(composer, tmp_path):
    spec = composer.create("conda", "alice", {
        "environment": "name: demo\ndependencies:\n  - python=3.11\n  - numpy\n",
        "requirements": "six\n",
    })
    warned = {p["section"] for p in spec["problems"] if p["severity"] == "warning"}
    assert "requirements" in warned
    dockerfile = repo2docker_dockerfile(checkout(composer, "conda", tmp_path))
    assert "environment.yml" in dockerfile
    assert "requirements.txt" not in dockerfile  # repo2docker ignores it, as warned
    result = preview(composer, "conda")
    assert result["buildpack"] == "CondaBuildPack"
    assert "Building conda environment for python=3.11" in result["messages"]


def test_r_runtime_and_install_r_are_detected_as_r(composer):
    composer.create("r", "alice", {"runtime": "r-4.4-2025-01-15\n",
                                   "install_r": 'install.packages("ggplot2")\n'})
    result = preview(composer, "r")
    assert result["buildpack"] == "RBuildPack"
    # rendering asks Posit's package manager for the snapshot: offline it says so
    assert result["error"] is None or result["stage"] == "render"


def test_project_toml_is_detected_as_julia(composer):
    composer.create("jl", "alice", {
        "julia": '[deps]\nIJulia = "7073ff75-c697-5162-941a-fcdaad2a7d2a"\n'})
    assert preview(composer, "jl")["buildpack"] == "JuliaProjectTomlBuildPack"


def test_dockerfile_mode_is_built_only_from_the_dockerfile(composer, tmp_path):
    dockerfile = "FROM example.org/base:1\nCOPY --chown=1000:1000 . /home/jovyan/\n"
    spec = composer.create("docker", "alice", {"dockerfile": dockerfile,
                                               "requirements": "numpy\n"})
    assert [p["section"] for p in spec["problems"]] == ["requirements"]
    assert "ignored" in spec["problems"][0]["message"]
    # repo2docker prints the Dockerfile as it is (plus print's newline)
    assert repo2docker_dockerfile(checkout(composer, "docker", tmp_path)) == dockerfile + "\n"
    result = preview(composer, "docker")
    assert result["buildpack"] == "DockerBuildPack" and result["dockerfile"] == dockerfile


def test_a_binder_folder_keeps_its_place(composer, tmp_path):
    """Imported repositories with binder/ are edited there: repo2docker reads only it."""
    from tljh_rees.composer.archive import Imported

    composer.import_files("bind", "alice", Imported(files={
        "binder/requirements.txt": b"numpy\n", "binder/environment.yaml": b"",
        "README.md": b"# hi\n"}), replace=False)
    spec = composer.spec("bind")
    assert spec["config_dir"] == "binder"
    assert spec["section_files"]["requirements"] == "binder/requirements.txt"
    assert spec["section_files"]["environment"] == "binder/environment.yaml"
    composer.save("bind", "alice", {"requirements": "pandas\n", "apt": "curl\n"})
    directory = checkout(composer, "bind", tmp_path)
    assert sorted(os.listdir(os.path.join(directory, "binder"))) == ["apt.txt",
                                                                      "requirements.txt"]
    assert open(os.path.join(directory, "README.md")).read() == "# hi\n"
    dockerfile = repo2docker_dockerfile(directory)
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in dockerfile
    assert "--no-install-recommends curl" in dockerfile
