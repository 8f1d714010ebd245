"""repo2docker's own choice of build pack and its Dockerfile for a directory.

Run as a subprocess (``python -m tljh_rees.composer.detect DIR``): repo2docker's build
packs read files relative to the working directory, which a server must not change.
Prints one JSON object: ``buildpack``, ``dockerfile``, ``messages`` (what repo2docker
logged while deciding) and ``error``/``stage`` when detection or rendering failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage().strip())


def detect(directory: str, base_image: str = "", user_name: str = "jovyan",
           user_id: int = 1000) -> dict:
    from repo2docker.app import Repo2Docker

    app = Repo2Docker()
    if base_image:
        app.base_image = base_image
    collect = _Collect()
    logger = logging.getLogger("repo2docker")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    result = {"buildpack": None, "dockerfile": None, "messages": collect.messages,
              "error": None, "stage": None}
    os.chdir(directory)
    try:
        for buildpack_class in app.buildpacks:
            buildpack = buildpack_class(base_image=app.base_image)
            if buildpack.detect():
                break
        else:
            buildpack = app.default_buildpack(base_image=app.base_image)
        buildpack.platform = app.platform
        result["buildpack"] = type(buildpack).__name__
    except Exception as e:  # repo2docker raises plain errors for bad files
        result.update(error=f"{type(e).__name__}: {e}", stage="detect")
        return result
    try:
        result["dockerfile"] = buildpack.render({"NB_USER": user_name, "NB_UID": str(user_id)})
    except Exception as e:
        result.update(error=f"{type(e).__name__}: {e}", stage="render")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--base-image", default="")
    parser.add_argument("--user-name", default="jovyan")
    parser.add_argument("--user-id", type=int, default=1000)
    args = parser.parse_args(argv)
    result = detect(os.path.abspath(args.directory), args.base_image, args.user_name,
                    args.user_id)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
