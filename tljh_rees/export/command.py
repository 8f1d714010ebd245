"""``tljh-rees build`` and ``repo2singularity``: repository → image → SIF → registry, no Hub.

The image is built by repo2docker (the same builder the service uses), converted to a SIF
by :class:`~tljh_rees.export.convert.SifConverter`, and pushed by ``push``. Secrets come
from the environment only: ``REES_GIT_USERNAME``/``REES_GIT_PASSWORD`` for a private
repository, ``REES_REGISTRY_USERNAME``/``REES_REGISTRY_PASSWORD`` (or ``docker login``)
for the registry.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import tempfile

from traitlets.config import Config
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from .convert import SifConverter
from .errors import ExportError
from .progress import TerminalProgress, human_size
from .targets import REGISTRY_ENV, PushTarget, default_target, parse_target

GIT_USERNAME_ENV = "REES_GIT_USERNAME"
GIT_PASSWORD_ENV = "REES_GIT_PASSWORD"


def load_config(path: str | None) -> Config:
    """A traitlets config file (.py or .json) for Repo2DockerBuilder and SifConverter."""
    if not path:
        return Config()
    directory, name = os.path.split(os.path.abspath(path))
    loader = JSONFileConfigLoader if name.endswith(".json") else PyFileConfigLoader
    try:
        return loader(name, path=directory).load_config()
    except Exception as e:  # the loader's own errors say what is wrong in the file
        raise ExportError(f"cannot read the config file {path}: {e}") from None


def split_image_name(text: str | None, repo: str) -> tuple[str, str]:
    """``NAME[:TAG]`` → (name, tag or ''); the name defaults to one derived from the repo."""
    from ..builds.request import default_name

    if not text:
        return default_name(repo), ""
    name, _, tag = text.partition(":")
    if not name or name != name.lower() or "/" in name or name.startswith(("-", ".")):
        raise ExportError(f"--image-name {text!r}: expected a lowercase name like "
                          "'my-analysis' or 'my-analysis:v1' (registry paths go in the "
                          "push target)")
    return name, tag


def resolve_repo(repo: str, ref: str | None):
    """Validated (repo, ref, credentials); credentials only from the environment."""
    from ..builds.credentials import Credentials
    from ..builds.request import check_ref, check_repo
    from ..errors import InputError

    try:
        repo, url_credentials = check_repo(repo, allow_local=True)
        ref = check_ref(ref)
    except InputError as e:
        raise ExportError(str(e)) from None
    if url_credentials:
        raise ExportError(f"put the repository's credentials in {GIT_USERNAME_ENV} and "
                          f"{GIT_PASSWORD_ENV}, not in the URL (command lines are visible "
                          "to every user of the machine)")
    username = os.environ.get(GIT_USERNAME_ENV, "")
    password = os.environ.get(GIT_PASSWORD_ENV, "")
    credentials = Credentials(username or "git", password) if password else None
    return repo, ref, credentials


def build_image(api, repo: str, ref: str, name: str, tag: str, config: Config,
                progress: TerminalProgress) -> tuple[str, str]:
    """Build ``ref`` of ``repo`` with the service's own build step, unless built already.

    Returns (image, commit); the image is ``NAME:TAG``, or ``NAME:<commit[:12]>``, which
    is reused when it exists.
    """
    from ..builds.builder import BuildFailed
    from ..builds.git import GitError
    from ..builds.pipeline import fetch_and_build
    from ..builds.repo2docker import Repo2DockerBuilder
    from ..builds.sources import GitSource
    from ..engine.images import DockerImages, provenance_labels
    from ..errors import ReesError

    repo, ref, credentials = resolve_repo(repo, ref)
    source = GitSource(repo, credentials, allow_local=True)
    images = DockerImages(lambda: api)

    def image_for(commit: str) -> str:
        return f"{name}:{tag or commit[:12]}"

    def reuse(commit: str) -> str | None:
        return None if tag else image_for(commit)  # a given tag is always built anew

    def on_line(line: str) -> None:
        if "is already built" in line:
            progress.note(line.rstrip().replace("is already built from this commit",
                                                "is built already; reusing it"))
        elif line.strip():
            progress.note(line.rstrip())

    try:
        progress.step(f"Resolving {ref} in {repo}")
        commit = asyncio.run(source.resolve(ref))
        if commit and reuse(commit) and images.inspect(reuse(commit)):
            progress.note(f"{reuse(commit)} is built already; reusing it")
            return reuse(commit), commit
        progress.step(f"Checking out {ref} and building it with repo2docker")
        with tempfile.TemporaryDirectory(prefix="rees-src-") as tmp:
            built = asyncio.run(fetch_and_build(
                source, ref, tmp, Repo2DockerBuilder(config=config), images,
                image_for=image_for,
                labels_for=lambda c: provenance_labels(
                    repo=repo, ref=ref, commit=c,
                    created=datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%dT%H:%M:%SZ")),
                reuse=reuse, on_line=on_line))
        progress.note(f"commit {built.commit}")
        return built.image, built.commit
    except (GitError, BuildFailed, ReesError) as e:
        raise ExportError(source.redact(str(e))) from None


def export_and_push(api, image: str, sif: str | None, targets: list[PushTarget],
                    config: Config, method: str | None, work_dir: str | None,
                    progress: TerminalProgress) -> None:
    """Write the SIF (when asked for, or needed by an oras push) and push."""
    from .push import push_image, push_sif  # oras-py takes seconds to import

    converter = SifConverter(config=config)
    if method:
        converter.method = method
    if work_dir:
        converter.work_dir = work_dir
    needs_sif = sif or any(t.transport == "oras" for t in targets)
    with tempfile.TemporaryDirectory(prefix="rees-sif-out-") as tmp:
        if needs_sif:
            out = sif or os.path.join(tmp, f"{image.split(':')[0]}.sif")
            converter.convert(api, image, out, progress)
            size = os.path.getsize(out)
            if sif:
                progress.note(f"wrote {out} ({human_size(size)})")
        for target in targets:
            if target.transport == "oras":
                push_sif(out, target, progress)
                progress.note(f"pull it with: {target.pull_command()}")
            else:
                push_image(image, target, progress)
                progress.note(f"pull it with: docker pull {target.reference}  or  "
                              f"apptainer pull {target}")


def _run(work) -> int:
    from ..builds.git import GitError
    from ..engine.docker import EngineUnavailable

    progress = TerminalProgress()
    try:
        work(progress)
        progress.finish()
        return 0
    except (ExportError, GitError, EngineUnavailable) as e:
        progress.finish()
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.finish()
        print("interrupted", file=sys.stderr)
        return 130


def _docker_api():
    import docker

    from ..engine.docker import client

    client(timeout=10)  # a clear error when the engine is down
    return docker.APIClient(version="auto", timeout=600, **docker.utils.kwargs_from_env())


def cmd_build(args) -> int:
    """``tljh-rees build``: build the repository; optionally write a SIF and push."""
    def work(progress):
        targets = [parse_target(t) for t in args.push or []]
        config = load_config(args.config)
        name, tag = split_image_name(args.image_name, args.repo)
        api = _docker_api()
        image, _commit = build_image(api, args.repo, args.ref, name, tag, config, progress)
        progress.note(f"image: {image}")
        if args.sif or targets:
            export_and_push(api, image, args.sif, targets, config, args.method,
                            args.work_dir, progress)

    return _run(work)


def add_build_parser(sub) -> None:
    """The ``build`` subcommand of ``tljh-rees``."""
    p = sub.add_parser(
        "build", help="build a repository with repo2docker; optionally export a SIF and "
                      "push (no Hub needed)",
        description="Build a git repository into a Docker image with repo2docker, "
                    "optionally convert it to a SIF file for Apptainer/Singularity and push "
                    "it. Credentials come from the environment: REES_GIT_USERNAME/"
                    "REES_GIT_PASSWORD for the repository, REES_REGISTRY_USERNAME/"
                    "REES_REGISTRY_PASSWORD (or 'docker login') for the registry.")
    p.add_argument("repo", help="git URL or local path of the repository")
    _common_arguments(p)
    p.add_argument("--sif", metavar="OUT.sif", help="write the SIF file here")
    p.add_argument("--push", metavar="TARGET", action="append",
                   help="oras://HOST/NAME:TAG pushes the SIF (for 'apptainer pull "
                        "oras://…'); docker://HOST/NAME:TAG pushes the OCI image; repeatable")
    p.set_defaults(func=cmd_build)


def _common_arguments(p) -> None:
    p.add_argument("--ref", help="branch, tag or commit (default: the default branch)")
    p.add_argument("--image-name", metavar="NAME[:TAG]",
                   help="name of the image (default: from the repository URL); its tag "
                        "defaults to the commit")
    p.add_argument("--config", metavar="FILE",
                   help="traitlets config (.py or .json) for Repo2DockerBuilder and "
                        "SifConverter")
    p.add_argument("--method", choices=["auto", "apptainer", "assemble"],
                   help="how to make the SIF (default auto: Apptainer if installed, else "
                        "mksquashfs + siftool)")
    p.add_argument("--work-dir", metavar="DIR",
                   help="where to unpack the image while making the SIF (default: $TMPDIR)")


def repo2singularity_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="repo2singularity",
        description="Build a git repository into a Singularity/Apptainer image (SIF) with "
                    "repo2docker, and optionally push it to a registry.")
    p.add_argument("repo", help="git URL or local path of the repository")
    _common_arguments(p)
    p.add_argument("--sif", metavar="OUT.sif",
                   help="where to write the SIF (default: ./NAME.sif)")
    p.add_argument("--push", action="store_true",
                   help=f"push the SIF to ${REGISTRY_ENV}/NAME:TAG (e.g. {REGISTRY_ENV}="
                        "oras://registry.example.org/my-team; the tag defaults to latest); "
                        "log in with REES_REGISTRY_USERNAME/REES_REGISTRY_PASSWORD or "
                        "'docker login'")
    p.add_argument("--push-to", metavar="TARGET", action="append",
                   help="push here instead: oras://HOST/NAME:TAG (the SIF) or "
                        "docker://HOST/NAME:TAG (the OCI image); repeatable")
    return p


def repo2singularity_main(argv=None) -> None:
    args = repo2singularity_parser().parse_args(argv)

    def work(progress):
        config = load_config(args.config)
        name, tag = split_image_name(args.image_name, args.repo)
        targets = [parse_target(t) for t in args.push_to or []]
        if args.push and not targets:
            targets.append(default_target(f"{name}:{tag or 'latest'}"))
        sif = args.sif or f"{name}.sif"
        api = _docker_api()
        image, _commit = build_image(api, args.repo, args.ref, name, tag, config, progress)
        export_and_push(api, image, sif, targets, config, args.method, args.work_dir,
                        progress)
        from .push import sha256_file

        progress.note(f"sha256 of {sif}: {sha256_file(sif).split(':')[1]}")

    sys.exit(_run(work))
