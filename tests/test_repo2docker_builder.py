"""The builder drives the real repo2docker: configuration reaches it, log lines come back.

Conda-based build packs cannot finish offline here (conda-forge is unreachable), so
each REES kind is checked through repo2docker's own ``--no-build --debug`` output.
"""

import asyncio

import pytest

from tljh_rees.builds.repo2docker import BuildFailed, Repo2DockerBuilder, parse_log_line

KINDS = {
    "requirements.txt": ({"requirements.txt": "numpy==2.1.0\n"}, "requirements.txt"),
    "environment.yml": ({"environment.yml": "dependencies:\n  - python=3.11\n"},
                        "environment.yml"),
    "apt.txt": ({"apt.txt": "graphviz\n", "requirements.txt": "six\n"}, "graphviz"),
    "runtime.txt": ({"runtime.txt": "python-3.10\n"}, "python=3.10"),
    "postBuild": ({"postBuild": "#!/bin/bash\necho hi\n", "requirements.txt": "six\n"},
                  "postBuild"),
    "start": ({"start": "#!/bin/bash\nexec \"$@\"\n", "requirements.txt": "six\n"},
              "repo2docker-entrypoint"),
}


def dry_run(tmp_path, files: dict, **traits) -> str:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    builder = Repo2DockerBuilder(extra_args=["--no-build", "--debug"], **traits)
    lines: list[str] = []
    asyncio.run(builder.build(str(tmp_path), "rees-dry:run", {"org.tljh-rees.environment": "x"},
                              lines.append))
    return "".join(lines)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_rees_kind_is_detected_with_our_settings(tmp_path, kind):
    files, expected = KINDS[kind]
    out = dry_run(tmp_path, files, base_image="example.org/site/base:1",
                  build_args={"SITE_MIRROR": "http://mirror.example"})
    assert "FROM example.org/site/base:1" in out
    assert expected in out
    assert 'LABEL org.tljh-rees.environment="x"' in out or "org.tljh-rees.environment" in out
    assert "NB_UID=1000" in out or "ARG NB_UID" in out


def test_dockerfile_repos_use_their_own_dockerfile(tmp_path):
    out = dry_run(tmp_path, {"Dockerfile": "FROM scratch-base:1\nRUN echo own\n"})
    assert "FROM scratch-base:1" in out and "RUN echo own" in out


def test_a_failing_build_raises_with_its_output(tmp_path, base_image):
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo about-to-fail && false\n")
    lines: list[str] = []
    with pytest.raises(BuildFailed):
        asyncio.run(Repo2DockerBuilder().build(str(tmp_path), "rees-failing:1", {},
                                               lines.append))
    assert any("about-to-fail" in line for line in lines)


def test_log_lines_parse():
    assert parse_log_line('{"message": "Step 1", "phase": "building"}\n') == ("Step 1\n",
                                                                            "building")
    assert parse_log_line("plain text\n") == ("plain text\n", "")
    assert parse_log_line("[1, 2]\n") == ("[1, 2]\n", "")


@pytest.fixture(scope="module")
def repo2docker_base(engine):
    from tljh_rees.engine.baseimage import BaseImageRecipe, default_ca_bundle, ensure_base_image

    return ensure_base_image(BaseImageRecipe(ca_bundle=default_ca_bundle(), for_repo2docker=True))


def test_the_local_repo2docker_base_carries_a_build_pack_build(tmp_path, repo2docker_base):
    """repo2docker's requirements.txt build pack runs on the local base until it needs
    conda-forge (unreachable here): user set-up and apt steps pass, then the download
    of micromamba is where it stops."""
    (tmp_path / "requirements.txt").write_text("six\n")
    lines: list[str] = []
    with pytest.raises(BuildFailed):
        asyncio.run(Repo2DockerBuilder(base_image=repo2docker_base).build(
            str(tmp_path), "rees-r2d-base-check:1", {}, lines.append))
    log = "".join(lines)
    assert f"FROM docker.io/{repo2docker_base}" in log or f"FROM {repo2docker_base}" in log
    assert "useradd" in log
    failed_step = [line for line in lines if "ERROR" in line][0]
    assert "install-base-env" in failed_step  # conda's step, not the base template's
    assert "micromamba" in log
