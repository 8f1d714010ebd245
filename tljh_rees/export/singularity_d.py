"""The ``/.singularity.d`` tree and SIF metadata objects for a Docker image.

Apptainer runs a container through ``/.singularity.d/actions/{exec,run,shell,start,test}``,
which source ``/.singularity.d/env/*.sh`` in order and then run the command or the
runscript. For an image converted from Docker, the environment is the image's ENV and the
runscript follows ``docker run``: arguments replace CMD, ENTRYPOINT stays. The scripts
here are written for tljh-rees; only the file names and the variables the runtime sets
follow Apptainer's conventions.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass

from .image import ImageInfo

# The first line of a SIF: the file runs itself through the runtime when executed.
LAUNCH_SCRIPT = "#!/usr/bin/env run-singularity\n"
D = ".singularity.d"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_SOURCE_ENV = """for rees_env_script in /.singularity.d/env/*.sh; do
    if [ -f "$rees_env_script" ]; then . "$rees_env_script"; fi
done
unset rees_env_script
"""

ACTIONS = {
    "exec": "#!/bin/sh\n# Run the given command in the container's environment.\n"
            + _SOURCE_ENV + 'exec "$@"\n',
    "run": "#!/bin/sh\n# Run the container's runscript with the given arguments.\n"
           + _SOURCE_ENV + """if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "This container has no runscript; starting /bin/sh instead." >&2
exec /bin/sh "$@"
""",
    "shell": "#!/bin/sh\n# An interactive shell: the one asked for, else bash, else sh.\n"
             + _SOURCE_ENV + """if [ -n "${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then
    exec "$SINGULARITY_SHELL" "$@"
fi
if [ -x /bin/bash ]; then
    SHELL=/bin/bash
    export SHELL
    exec /bin/bash --norc "$@"
fi
SHELL=/bin/sh
export SHELL
exec /bin/sh "$@"
""",
    "start": "#!/bin/sh\n# Instance start: wake the instance's init (PID 1), then the start script.\n"
             + "kill -CONT 1\n" + _SOURCE_ENV + """if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript "$@"
fi
""",
    "test": "#!/bin/sh\n# The container's self-test, if it has one.\n"
            + _SOURCE_ENV + """if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "This container has no test."
""",
}

STATIC_ENV = {
    "01-base.sh": "#!/bin/sh\n# Base environment: nothing to add before the image's own.\n",
    "90-environment.sh": "#!/bin/sh\n# Environment settings added for this container follow.\n",
    "99-base.sh": """#!/bin/sh
# Host libraries the runtime binds in (e.g. GPU drivers) are searched last.
LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/.singularity.d/libs"
PS1="Apptainer> "
export LD_LIBRARY_PATH PS1
""",
    "99-runtimevars.sh": """#!/bin/sh
# PATH changes asked for on the runtime's command line (--env PATH/PREPEND_PATH/APPEND_PATH).
if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"; fi
if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"; fi
if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then PATH="$SING_USER_DEFINED_PATH"; fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
""",
}

# Links at the root that older tools and documentation use.
ROOT_LINKS = {
    ".exec": f"{D}/actions/exec",
    ".run": f"{D}/actions/run",
    ".shell": f"{D}/actions/shell",
    ".test": f"{D}/actions/test",
    "singularity": f"{D}/runscript",
    "environment": f"{D}/env/90-environment.sh",
}
# Where the runtime mounts or binds things; made when the image lacks them.
MOUNT_DIRS = {"proc": 0o755, "sys": 0o755, "dev": 0o755, "home": 0o755, "tmp": 0o1777,
              "var/tmp": 0o1777}
MOUNT_FILES = ("etc/hosts", "etc/resolv.conf")


def shell_words(words) -> str:
    return " ".join(shlex.quote(w) for w in words)


def env_script(env: list[str] | tuple[str, ...]) -> tuple[str, list[str]]:
    """The image's ENV as a sourced script; also the names that cannot be shell variables."""
    lines = ["#!/bin/sh", "# The environment of the Docker image (its ENV)."]
    skipped = []
    for entry in env:
        name, _, value = entry.partition("=")
        if not ENV_NAME.match(name):
            skipped.append(name)
            continue
        lines.append(f"export {name}={shlex.quote(value)}")
    return "\n".join(lines) + "\n", skipped


def runscript(entrypoint, cmd) -> str:
    """A runscript with ``docker run`` semantics for ENTRYPOINT and CMD."""
    return f"""#!/bin/sh
# Runs the Docker image's ENTRYPOINT and CMD as `docker run` would:
# arguments replace CMD, ENTRYPOINT stays.
OCI_ENTRYPOINT={shlex.quote(shell_words(entrypoint))}
OCI_CMD={shlex.quote(shell_words(cmd))}
if [ $# -eq 0 ]; then
    eval "set -- $OCI_ENTRYPOINT $OCI_CMD"
elif [ -n "$OCI_ENTRYPOINT" ]; then
    eval "set -- $OCI_ENTRYPOINT \\"\\$@\\""
fi
if [ $# -eq 0 ]; then
    echo "This image has no ENTRYPOINT or CMD: give the command to run." >&2
    exit 1
fi
exec "$@"
"""


def oci_config(image: ImageInfo) -> dict:
    """The OCI image configuration (only the fields that are set, like Apptainer's)."""
    config = {
        "User": image.user,
        "ExposedPorts": {p: {} for p in image.exposed_ports},
        "Env": list(image.env),
        "Entrypoint": list(image.entrypoint),
        "Cmd": list(image.cmd),
        "Volumes": {v: {} for v in image.volumes},
        "WorkingDir": image.working_dir,
        "Labels": dict(image.labels),
        "StopSignal": image.stop_signal,
    }
    return {k: v for k, v in config.items() if v}


@dataclass
class SifMetadata:
    """Everything the SIF says about the container besides its filesystem."""

    deffile: str
    labels: dict
    environment: str
    runscript: str
    oci_config: dict
    skipped_env: list
    startscript: str = "#!/bin/sh\n"

    @classmethod
    def for_image(cls, image: ImageInfo, build_date: str, tool: str) -> "SifMetadata":
        source = image.reference if ":" in image.reference or "@" in image.reference \
            else image.id
        deffile = f"BootStrap: docker-daemon\nFrom: {source}\n"
        labels = dict(sorted(image.labels.items()))
        labels.update({
            "org.label-schema.build-arch": image.architecture,
            "org.label-schema.build-date": build_date,
            "org.label-schema.schema-version": "1.0",
            "org.label-schema.usage.singularity.deffile.bootstrap": "docker-daemon",
            "org.label-schema.usage.singularity.deffile.from": source,
            "org.tljh-rees.sif.built-by": tool,
            "org.tljh-rees.sif.image-id": image.id,
        })
        environment, skipped = env_script(image.env)
        return cls(deffile=deffile, labels=labels, environment=environment,
                   runscript=runscript(image.entrypoint, image.cmd),
                   oci_config=oci_config(image), skipped_env=skipped)

    def files(self) -> dict[str, tuple[str, int]]:
        """Path under the root → (content, mode) of every file in ``/.singularity.d``."""
        files = {f"{D}/actions/{name}": (text, 0o755) for name, text in ACTIONS.items()}
        files.update({f"{D}/env/{name}": (text, 0o755) for name, text in STATIC_ENV.items()})
        files[f"{D}/env/10-docker2singularity.sh"] = (self.environment, 0o755)
        files[f"{D}/runscript"] = (self.runscript, 0o755)
        files[f"{D}/startscript"] = (self.startscript, 0o755)
        files[f"{D}/labels.json"] = (json.dumps(self.labels, indent="\t") + "\n", 0o644)
        files[f"{D}/Singularity"] = (self.deffile, 0o644)
        return files

    def inspect_metadata(self) -> dict:
        """The JSON object ``apptainer inspect`` reads from the SIF."""
        return {"data": {"attributes": {
            "deffile": self.deffile,
            "environment": {
                f"/{D}/env/10-docker2singularity.sh": self.environment,
                f"/{D}/env/90-environment.sh": STATIC_ENV["90-environment.sh"],
            },
            "labels": self.labels,
            "runscript": self.runscript,
            "startscript": self.startscript,
        }, "type": "container"}}


def _is_real_dir(root: str, rel: str) -> bool:
    """``rel`` is a directory inside ``root`` reached without following any symlink."""
    path = root
    for part in [p for p in rel.split("/") if p]:
        path = os.path.join(path, part)
        if os.path.islink(path) or not os.path.isdir(path):
            return False
    return True


def write_tree(root: str, metadata: SifMetadata) -> None:
    """Add ``/.singularity.d``, the root links and missing mount points to ``root``.

    Nothing is written through a symlink of the image, so an image cannot redirect these
    writes outside ``root``.
    """
    top = os.path.join(root, D)
    if os.path.islink(top) or os.path.isfile(top):
        os.remove(top)
    elif os.path.isdir(top):
        shutil.rmtree(top)
    for sub in ("", "actions", "env", "libs"):
        os.mkdir(os.path.join(top, sub), 0o755)
        os.chmod(os.path.join(top, sub), 0o755)
    for rel, (content, mode) in metadata.files().items():
        path = os.path.join(root, rel)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(path, mode)
    for name, target in ROOT_LINKS.items():
        path = os.path.join(root, name)
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                continue  # the image's own directory of that name wins
            os.remove(path)
        os.symlink(target, path)
    for rel, mode in MOUNT_DIRS.items():
        parent, _, _ = rel.rpartition("/")
        path = os.path.join(root, rel)
        if not os.path.lexists(path) and _is_real_dir(root, parent):
            os.mkdir(path)
            os.chmod(path, mode)
    for rel in MOUNT_FILES:
        parent, _, _ = rel.rpartition("/")
        path = os.path.join(root, rel)
        if not os.path.lexists(path) and _is_real_dir(root, parent):
            open(path, "w").close()
            os.chmod(path, 0o644)
