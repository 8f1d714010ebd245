"""One build step, shared by the service's queue and ``tljh-rees build``: fetch a
source at a ref, reuse an image already made from that version, or build one."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Callable

from ..engine.images import Images
from .builder import BuildFailed, Builder
from .sources import Source


@dataclass(frozen=True)
class Built:
    commit: str
    image: str  # the tag
    image_id: str
    size: int
    reused: bool  # no build ran: an image of this version existed


async def fetch_and_build(source: Source, ref: str, workdir: str, builder: Builder,
                          images: Images, image_for: Callable[[str], str],
                          labels_for: Callable[[str], dict],
                          reuse: Callable[[str], str | None],
                          on_line: Callable[[str], None],
                          on_process: Callable = lambda p: None) -> Built:
    """``image_for(commit)`` names the image, ``labels_for(commit)`` labels it and
    ``reuse(commit)`` names an existing image of that version (or None)."""
    checkout = os.path.join(workdir, "repo")
    commit = await source.fetch(ref, checkout, on_line)
    on_line(f"checked out {source.repo} at {commit}\n")
    image = image_for(commit)
    existing = reuse(commit)
    if existing:
        info = await asyncio.to_thread(images.inspect, existing)
        if info is not None:
            if existing != image:
                await asyncio.to_thread(images.tag, info.id, image)
            on_line(f"{image} is already built from this commit\n")
            return Built(commit, image, info.id, info.size, reused=True)
    await builder.build(checkout, image, labels_for(commit), on_line, on_process)
    info = await asyncio.to_thread(images.inspect, image)
    if info is None:
        raise BuildFailed(f"the builder finished but there is no image {image}")
    return Built(commit, image, info.id, info.size, reused=False)
