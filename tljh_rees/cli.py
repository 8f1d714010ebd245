"""The ``tljh-rees`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.state_dir, ip=args.ip, port=args.port,
                    require_password=args.require_password)


def cmd_setup_engine(args) -> int:  # noqa: ARG001
    from .engine.host import ensure_engine

    ensure_engine()
    print("Docker engine and buildx are ready")
    return 0


def cmd_base_image(args) -> int:
    from .engine.baseimage import BaseImageRecipe, default_ca_bundle, ensure_base_image

    ca = args.ca_bundle
    if ca is None:  # under TLJH, the admin's rees.builds.ca_bundle; else the host's bundle
        ca = (_tljh_rees_section().get("builds") or {}).get("ca_bundle") or default_ca_bundle()
    recipe = BaseImageRecipe(ca_bundle=ca, mirror=args.mirror,
                             for_repo2docker=args.for_repo2docker)
    tag = ensure_base_image(recipe,
                            progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(tag)
    return 0


def cmd_service_images(args) -> int:
    from .engine.baseimage import default_ca_bundle
    from .services.images import ensure_service_image, service_recipes
    from .services.kinds import ServiceCatalog
    from .settings import SettingsError, parse_settings

    section = _tljh_rees_section()
    try:
        settings = parse_settings(section)
    except SettingsError as e:
        print(e, file=sys.stderr)
        return 1
    catalog = ServiceCatalog({s.name: s for s in settings.services})
    if args.service:  # named ones, even if not enabled (to pre-build before enabling)
        from .services.kinds import KINDS

        unknown = [n for n in args.service if n not in KINDS]
        if unknown:
            print(f"unknown service {', '.join(unknown)}; known: {', '.join(KINDS)}",
                  file=sys.stderr)
            return 2
        catalog = ServiceCatalog({s.name: replace(s, enabled=True) for s in settings.services
                                  if s.name in args.service})
    if not catalog.offered():
        print("no add-on service is enabled (rees.services.<name>.enabled); name one to "
              "build it anyway", file=sys.stderr)
        return 0
    ca = args.ca_bundle
    if ca is None:
        ca = settings.builds.ca_bundle or default_ca_bundle()
    for recipe in service_recipes(catalog, ca_bundle=ca,
                                  mirror=args.mirror or settings.base_image_mirror):
        tag = ensure_service_image(recipe,
                                   progress=lambda m: print(m, file=sys.stderr, flush=True))
        print(tag)
    return 0


def _tljh_rees_section() -> dict:
    try:
        from .plugin import load_rees_section

        return load_rees_section()
    except ImportError:  # not under TLJH
        return {}


def cmd_check_config(args) -> int:
    import yaml

    from .settings import SettingsError, machine_memory, parse_settings

    with open(args.config) as f:
        raw = (yaml.safe_load(f) or {}).get("rees")
    try:
        parse_settings(raw, cpu_count=os.cpu_count(), memory_total=machine_memory())
    except SettingsError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{args.config}: the rees settings are valid")
    return 0


def cmd_gc(args) -> int:
    """Disk garbage collection now, on the service's own database (run as root on the
    Hub's machine, like ``tljh-rees build``)."""
    import docker
    from traitlets.config import Config

    from .catalog import Catalog, Profiles
    from .engine.images import DockerImages
    from .hubconfig import gc_config
    from .operations.gc import GarbageCollector, docker_disk_usage
    from .settings import SettingsError, parse_settings
    from .store.db import open_database

    try:
        settings = parse_settings(_rees_section(args.config) if args.config
                                  else _tljh_rees_section())
    except (OSError, SettingsError) as e:
        print(e, file=sys.stderr)
        return 1
    config = gc_config(Config(), settings)
    for key in ("high", "low", "max_image_bytes", "build_cache_hours", "keep_days",
                "image_prefix"):
        if getattr(args, key) is not None:
            config.GarbageCollector[key] = getattr(args, key)
    if config.GarbageCollector.low >= config.GarbageCollector.high:
        print(f"--low ({config.GarbageCollector.low:g}) must be under --high "
              f"({config.GarbageCollector.high:g})", file=sys.stderr)
        return 2
    state_dir = args.state_dir or settings.state_dir
    database = os.path.join(state_dir, "rees.sqlite")
    if not os.path.exists(database):
        print(f"no service database at {database} (--state-dir)", file=sys.stderr)
        return 1
    api = docker.APIClient(version="auto", timeout=120, **docker.utils.kwargs_from_env())
    catalog = Catalog(open_database(f"sqlite:///{database}"), Profiles([]))
    registry = None
    if settings.swarm.enabled:  # multi-node mode: the registry too
        from .swarm.registry_gc import collector_for
        try:
            registry = collector_for(settings.swarm, state_dir, config=config)
        except (OSError, KeyError, TypeError) as e:
            print(f"cannot read the registry's files under {state_dir}/swarm/registry "
                  f"(has the Hub run with rees.swarm.enabled?): {e}", file=sys.stderr)
            return 1
    gc = GarbageCollector(catalog, DockerImages(lambda: api), docker_disk_usage(lambda: api),
                          logs_dir=os.path.join(state_dir, "logs"),
                          exports_dir=os.path.join(state_dir, "exports"),
                          registry=registry, config=config)
    report = gc.run(dry_run=args.dry_run)
    for removal in report.removals:
        print(removal.line(args.dry_run))
    for kept in report.kept:
        print(f"kept {kept}")
    print(report.summary())
    return 0


def _rees_section(path: str) -> dict:
    """The ``rees:`` section of the YAML file ``path``."""
    import yaml

    with open(path) as f:
        return (yaml.safe_load(f) or {}).get("rees") or {}


def _size_argument(text: str) -> int:
    from .settings import parse_size

    if text.strip() == "0":
        return 0
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 50G, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tljh-rees", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a development Hub with the rees service")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--ip", default="127.0.0.1",
                      help="address to listen on; on any but loopback the login needs the "
                           "random password written to STATE_DIR/admin-password")
    demo.add_argument("--require-password", action="store_true",
                      help="need that password on loopback too")
    demo.add_argument("--state-dir", default="./demo-state",
                      help="where the Hub and service keep their state (rees.yaml here "
                           "holds a 'rees:' section like TLJH's config.yaml)")
    demo.set_defaults(func=cmd_demo)

    engine = sub.add_parser("setup-engine", help="install and start Docker with buildx")
    engine.set_defaults(func=cmd_setup_engine)

    base = sub.add_parser("base-image", help="make the local base image with "
                                             "jupyterhub-singleuser; prints its tag")
    base.add_argument("--ca-bundle", help="CA bundle to trust in the image (default: "
                                          "rees.builds.ca_bundle under TLJH, else the host's, "
                                          "if any; '' for none)")
    base.add_argument("--mirror", default="http://deb.debian.org/debian")
    base.add_argument("--for-repo2docker", action="store_true",
                      help="make a base for repo2docker's build packs (rees.builds.base_image): "
                           "root, no user, buildpack-deps' tools; without this, a ready "
                           "jupyterhub-singleuser image for Dockerfile repositories")
    base.set_defaults(func=cmd_base_image)

    services = sub.add_parser("service-images",
                              help="make the images of the enabled add-on services "
                                   "(rees.services), or of those named; prints their tags")
    services.add_argument("service", nargs="*", help="postgres, redis (default: the enabled)")
    services.add_argument("--ca-bundle", help="CA bundle to trust in the images (default: "
                                              "rees.builds.ca_bundle, else the host's)")
    services.add_argument("--mirror", help="Debian mirror (default: rees.base_image_mirror)")
    services.set_defaults(func=cmd_service_images)

    check = sub.add_parser("check-config", help="validate the rees section of a TLJH config")
    check.add_argument("config", nargs="?", default="/opt/tljh/config/config.yaml")
    check.set_defaults(func=cmd_check_config)

    gc = sub.add_parser("gc", help="remove images, build cache, old logs and exports as "
                                   "rees.gc says (as root, on the Hub's machine)")
    gc.add_argument("--dry-run", action="store_true",
                    help="list what would be removed, remove nothing")
    gc.add_argument("--state-dir", help="the service's state folder (default: rees.state_dir)")
    gc.add_argument("--config", help="a YAML file with a 'rees:' section (default: TLJH's)")
    gc.add_argument("--high", type=float, help="percent of disk use that starts image "
                                               "removal (default: rees.gc.high)")
    gc.add_argument("--low", type=float, help="percent to remove images down to "
                                              "(default: rees.gc.low)")
    gc.add_argument("--max-image-bytes", type=_size_argument,
                    help="cap on the images' total size, like 50G; 0: none "
                         "(default: rees.gc.max_image_bytes)")
    gc.add_argument("--build-cache-hours", type=int,
                    help="prune build cache older than this; 0: not at all "
                         "(default: rees.gc.build_cache_hours)")
    gc.add_argument("--keep-days", type=int,
                    help="remove logs and exports older than this; 0: none "
                         "(default: rees.gc.keep_days)")
    gc.add_argument("--image-prefix", help="only images with a tag starting with this "
                                           "(default: rees-)")
    gc.set_defaults(func=cmd_gc)

    from .client import add_client_parser
    from .export.command import add_build_parser
    from .swarm.command import add_swarm_parser

    add_build_parser(sub)
    add_client_parser(sub)
    add_swarm_parser(sub)
    return parser


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args) or 0)
