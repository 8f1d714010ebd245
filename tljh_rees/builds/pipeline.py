"""One build step, shared by the service's queue and ``tljh-rees build``: fetch a
source at a ref, reuse an image already made from that version, or build one."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Callable

from ..engine.images import Images
from ..services.kinds import ServiceCatalog
from .builder import BuildFailed, Builder
from .declared import client_packages, read_declared
from .sources import Source


@dataclass(frozen=True)
class Built:
    commit: str
    image: str  # the tag
    image_id: str
    size: int
    reused: bool  # no build ran: an image of this version existed
    services: list | None = None  # declared in .rees/services.json (checked), or None
    registry_ref: str = ""  # where the builder published it (multi-node), by digest


async def fetch_and_build(source: Source, ref: str, workdir: str, builder: Builder,
                          images: Images, image_for: Callable[[str], str],
                          labels_for: Callable[[str], dict],
                          reuse: Callable[[str], str | None],
                          on_line: Callable[[str], None],
                          on_process: Callable = lambda p: None,
                          services: ServiceCatalog | None = None) -> Built:
    """``image_for(commit)`` names the image, ``labels_for(commit)`` labels it and
    ``reuse(commit)`` names an existing image of that version (or None). With the site's
    ``services``, the add-on services the checkout declares are read (and their client
    packages installed by the build)."""
    checkout = os.path.join(workdir, "repo")
    commit = await source.fetch(ref, checkout, on_line)
    on_line(f"checked out {source.repo} at {commit}\n")
    declared = read_declared(checkout, services) if services is not None else None
    if declared is not None and declared.note:
        on_line(f"services: {declared.note}\n")
    declared_services = declared.services if declared is not None else None
    image = image_for(commit)
    existing = reuse(commit)
    if existing:
        info = await asyncio.to_thread(images.inspect, existing)
        if info is not None:
            if existing != image:
                await asyncio.to_thread(images.tag, info.id, image)
            on_line(f"{image} is already built from this commit\n")
            return Built(commit, image, info.id, info.size, reused=True,
                         services=declared_services,
                         registry_ref=await builder.publish(image, on_line))
    packages = client_packages(declared_services, services) if services else []
    extra = {"client_packages": packages} if packages else {}  # builders may not know it
    await builder.build(checkout, image, labels_for(commit), on_line, on_process, **extra)
    info = await asyncio.to_thread(images.inspect, image)
    if info is None:
        raise BuildFailed(f"the builder finished but there is no image {image}")
    return Built(commit, image, info.id, info.size, reused=False, services=declared_services,
                 registry_ref=await builder.publish(image, on_line))
