"""Pure logic of the export: targets, generated scripts (run by a real /bin/sh), the tree."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess

import pytest

from tljh_rees.export.command import split_image_name
from tljh_rees.export.credentials import auth_file, login_from_env
from tljh_rees.export.errors import ExportError
from tljh_rees.export.image import ImageInfo
from tljh_rees.export.progress import TerminalProgress
from tljh_rees.export.singularity_d import SifMetadata, env_script, runscript, write_tree
from tljh_rees.export.targets import default_target, parse_target


@pytest.mark.parametrize("text, expected", [
    ("oras://127.0.0.1:5000/team/name:v1", ("oras", "127.0.0.1:5000", "team/name", "v1")),
    ("docker://registry.example.org/a/b/c", ("docker", "registry.example.org", "a/b/c",
                                             "latest")),
    ("oras://localhost:5000/x:1.0_rc-1", ("oras", "localhost:5000", "x", "1.0_rc-1")),
])
def test_parse_target(text, expected):
    target = parse_target(text)
    assert (target.transport, target.registry, target.path, target.tag) == expected
    assert str(target) == text if ":" in text.rsplit("/", 1)[-1] else text + ":latest"


@pytest.mark.parametrize("text, words", [
    ("library://sylabs/x:1", "expected oras://"),
    ("oras://name-only", "registry host and a name"),
    ("oras://host.org/UPPER:v1", "lowercase"),
    ("oras://host.org/x:-bad", "tag"),
    ("oras://host.org/x@sha256:abc", "not a digest"),
    ("oras://host.org/x y:1", "registry host and a name|lowercase"),
])
def test_bad_targets_say_what_is_expected(text, words):
    with pytest.raises(ExportError, match=words):
        parse_target(text)


def test_plain_http_only_on_this_machine():
    assert parse_target("oras://127.0.0.1:5000/x").plain_http
    assert parse_target("oras://localhost/x").plain_http
    assert not parse_target("oras://registry.example.org/x").plain_http
    assert not parse_target("oras://127.0.0.1.example.org/x").plain_http
    assert parse_target("oras://127.0.0.1:5000/x").pull_command() == \
        "apptainer pull --no-https oras://127.0.0.1:5000/x:latest"


def test_default_target_from_environment():
    env = {"REES_PUSH_REGISTRY": "ghcr.io/team/"}
    assert str(default_target("analysis:latest", env)) == "oras://ghcr.io/team/analysis:latest"
    env = {"REES_PUSH_REGISTRY": "docker://127.0.0.1:5000/t"}
    assert str(default_target("a:v2", env)) == "docker://127.0.0.1:5000/t/a:v2"
    with pytest.raises(ExportError, match="REES_PUSH_REGISTRY"):
        default_target("a:latest", {})


def test_image_names():
    assert split_image_name(None, "https://github.com/binder-examples/continuous-build") == \
        ("binder-examples-continuous-build", "")
    assert split_image_name("my-analysis:v1", "x") == ("my-analysis", "v1")
    for bad in ("Upper", "team/name", "-x"):
        with pytest.raises(ExportError, match="lowercase name"):
            split_image_name(bad, "x")


def sh(script: str, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["/bin/sh", "-c", script, "sh", *args], capture_output=True,
                          text=True, check=True, env=env or {"PATH": "/usr/bin:/bin"}).stdout


def run_runscript(tmp_path, entrypoint, cmd, *args) -> subprocess.CompletedProcess:
    path = tmp_path / "runscript"
    path.write_text(runscript(entrypoint, cmd))
    path.chmod(0o755)
    return subprocess.run([str(path), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})


PRINT_ARGS = ["/bin/sh", "-c", 'for a in "$@"; do printf "[%s]" "$a"; done', "prog"]


@pytest.mark.parametrize("entrypoint, cmd, args, expected", [
    # docker run semantics: arguments replace CMD, ENTRYPOINT stays
    (PRINT_ARGS, ["a b", "$HOME", "it's"], [], "[a b][$HOME][it's]"),
    (PRINT_ARGS, ["ignored"], ["x y", "`z`"], "[x y][`z`]"),
    ([], PRINT_ARGS + ["only", "cmd"], [], "[only][cmd]"),
    ([], ["ignored"], PRINT_ARGS + ['"q"'], '["q"]'),
    (PRINT_ARGS, [], [], ""),
])
def test_runscript_follows_docker_run(tmp_path, entrypoint, cmd, args, expected):
    result = run_runscript(tmp_path, entrypoint, cmd, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_runscript_without_command_explains(tmp_path):
    result = run_runscript(tmp_path, [], [])
    assert result.returncode == 1
    assert "no ENTRYPOINT or CMD" in result.stderr


def test_env_script_keeps_values_literal():
    values = ["plain", "with space", "it's $HOME `id` \"q\"", "", "a=b=c", "line\nbreak"]
    env = [f"V{i}={v}" for i, v in enumerate(values)] + ["BAD-NAME=x", "1X=y"]
    script, skipped = env_script(env)
    assert skipped == ["BAD-NAME", "1X"]
    out = sh(script + 'for i in 0 1 2 3 4 5; do eval "printf \'%s|\' \\"\\$V$i\\""; done')
    assert out.split("|")[:-1] == values


def image_info(**kw) -> ImageInfo:
    base = dict(reference="example/img:1", id="sha256:" + "ab" * 32, env=("A=1",),
                entrypoint=("/e",), cmd=("c",), labels={"k": "v"}, working_dir="/w")
    base.update(kw)
    return ImageInfo(**base)


def test_metadata_for_image():
    meta = SifMetadata.for_image(image_info(), "2026-01-01T00:00:00Z", "tljh-rees test")
    assert meta.deffile == "BootStrap: docker-daemon\nFrom: example/img:1\n"
    assert meta.labels["k"] == "v"
    assert meta.labels["org.label-schema.usage.singularity.deffile.bootstrap"] == \
        "docker-daemon"
    assert meta.oci_config == {"Env": ["A=1"], "Entrypoint": ["/e"], "Cmd": ["c"],
                               "WorkingDir": "/w", "Labels": {"k": "v"}}
    attributes = meta.inspect_metadata()["data"]["attributes"]
    assert attributes["runscript"] == meta.runscript
    assert "export A=1" in attributes["environment"][
        "/.singularity.d/env/10-docker2singularity.sh"]


def test_write_tree(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / ".dockerenv").write_text("")
    meta = SifMetadata.for_image(image_info(), "now", "test")
    write_tree(str(root), meta)
    d = root / ".singularity.d"
    assert json.loads((d / "labels.json").read_text())["k"] == "v"
    for action in ("exec", "run", "shell", "start", "test"):
        assert os.stat(d / "actions" / action).st_mode & stat.S_IXUSR
    assert os.readlink(root / "singularity") == ".singularity.d/runscript"
    assert os.readlink(root / ".run") == ".singularity.d/actions/run"
    assert (root / "etc" / "resolv.conf").is_file()
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    # the env scripts source cleanly, in order, with a plain POSIX shell
    out = sh('for f in "$1"/.singularity.d/env/*.sh; do . "$f"; done; '
             'printf "%s|%s" "$A" "$LD_LIBRARY_PATH"', str(root))
    assert out == "1|/.singularity.d/libs"


def test_write_tree_never_follows_the_image_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / ".singularity.d").symlink_to(outside)
    (root / "etc").symlink_to(outside)
    (root / "var").mkdir()
    (root / "var" / "tmp").symlink_to(outside)
    write_tree(str(root), SifMetadata.for_image(image_info(), "now", "test"))
    assert os.listdir(outside) == []
    assert (root / ".singularity.d").is_dir() and not (root / ".singularity.d").is_symlink()


def test_auth_file_from_environment_is_private():
    env = {"REES_REGISTRY_USERNAME": "u", "REES_REGISTRY_PASSWORD": "p@ss"}
    assert repr(login_from_env(env)).count("p@ss") == 0
    with auth_file("host:5000", env) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        data = json.load(open(path))
        assert data["auths"]["host:5000"]["auth"] == "dTpwQHNz"
    assert not os.path.exists(path)


def test_auth_file_falls_back_to_docker_config(tmp_path):
    with auth_file("h", {"DOCKER_CONFIG": str(tmp_path)}) as path:
        assert path is None
    (tmp_path / "config.json").write_text("{}")
    with auth_file("h", {"DOCKER_CONFIG": str(tmp_path)}) as path:
        assert path == str(tmp_path / "config.json")


def test_terminal_progress_without_a_terminal_prints_tenths():
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress.step("Uploading", total=1000)
    for done in range(0, 1001, 50):
        progress.advance(done)
    progress.step("Squashing", total=100, unit="percent")
    progress.advance(100)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "==> Uploading"
    assert len([line for line in lines if "of 1000 B" in line]) == 11
    assert lines[-1].strip().startswith("100%")


def test_config_file_configures_the_converter(tmp_path):
    from tljh_rees.export.command import load_config
    from tljh_rees.export.convert import SifConverter

    path = tmp_path / "rees.json"
    path.write_text(json.dumps({"SifConverter": {"method": "assemble",
                                                 "mksquashfs_args": ["-comp", "zstd"]}}))
    converter = SifConverter(config=load_config(str(path)))
    assert converter.chosen_method() == "assemble"
    assert converter.mksquashfs_args == ["-comp", "zstd"]
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ExportError, match="cannot read the config file"):
        load_config(str(tmp_path / "bad.json"))
