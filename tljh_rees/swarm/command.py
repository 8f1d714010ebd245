"""``tljh-rees swarm …``: the admin's commands of multi-node mode.

- ``join-command`` prints the engine's worker join command and, for the registry this
  project runs, the lines that make the new machine's engine trust the project's CA (so
  it can pull builds). The join token lets a machine join: the output is for the admin's
  terminal only.
- ``move-home USER NODE`` copies a user's files (and their persistent services' data) to
  another node (swarm/homes.py), e.g. before draining the node that holds them.
- ``forget-home USER`` drops the record of a home node that is gone for good.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time

TLJH_CONFIG = "/opt/tljh/config/config.yaml"


def add_swarm_parser(sub) -> None:
    swarm = sub.add_parser("swarm", help="multi-node mode (rees.swarm)")
    commands = swarm.add_subparsers(dest="swarm_command", required=True)
    join = commands.add_parser("join-command",
                               help="print the commands that make a machine a worker")
    join.set_defaults(func=cmd_join_command)
    move = commands.add_parser(
        "move-home", help="copy a user's files to another node and make it their home")
    move.add_argument("user", help="the user's name on the Hub")
    move.add_argument("node", help="the new node: its host name or id (docker node ls)")
    forget = commands.add_parser(
        "forget-home", help="drop the record of a user's home node that is gone for good "
                            "(their next server starts with an empty folder)")
    forget.add_argument("user", help="the user's name on the Hub")
    for command in (join, move, forget):
        command.add_argument("--config", default=TLJH_CONFIG,
                             help="a YAML file with a 'rees:' section (default: TLJH's)")
        command.add_argument("--state-dir", help="the service's state folder "
                                                 "(default: rees.state_dir)")
    move.set_defaults(func=cmd_move_home)
    forget.set_defaults(func=cmd_forget_home)


def _settings_and_engine(args):
    """(settings, the manager's engine), or None after saying what is wrong."""
    import docker
    import yaml

    from ..settings import SettingsError, parse_settings

    try:
        with open(args.config) as f:
            settings = parse_settings((yaml.safe_load(f) or {}).get("rees"))
    except (OSError, SettingsError) as e:
        print(e, file=sys.stderr)
        return None
    if args.state_dir:
        settings = dataclasses.replace(settings, state_dir=args.state_dir)
    return settings, docker.APIClient(version="auto", timeout=120,
                                      **docker.utils.kwargs_from_env())


def cmd_join_command(args) -> int:
    from .nodes import NotInSwarm, join_command, manager_address

    found = _settings_and_engine(args)
    if found is None:
        return 1
    settings, api = found
    try:
        registry, ca_file = settings.swarm.registry, ""
        if not registry:  # ours: its address and CA
            host = settings.swarm.advertise_address or manager_address(api)
            registry = f"{host}:{settings.swarm.registry_port}"
            ca_file = os.path.join(settings.state_dir, "swarm", "registry", "tls", "ca.crt")
            if not os.path.exists(ca_file):
                print(f"no CA at {ca_file}: start the Hub with rees.swarm.enabled first",
                      file=sys.stderr)
                return 1
        print(join_command(api, registry, ca_file))
    except NotInSwarm as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def _one_home(api, user: str):
    from .homes import homes_of

    homes = homes_of(api, user)
    if not homes:
        print(f"{user} has no home node recorded (no server of theirs ever ran in "
              "multi-node mode)", file=sys.stderr)
        return None
    if len(homes) > 1:
        print(f"{user} has several volumes recorded ({', '.join(h.volume for h in homes)});"
              " move them with docker by hand", file=sys.stderr)
        return None
    return homes[0]


def cmd_move_home(args) -> int:
    from docker.errors import DockerException

    from ..engine.baseimage import BaseImageRecipe
    from .homes import HomeError, move
    from .hub import registry_for, swarm_address
    from .nodes import NotInSwarm, node_from
    from .registry import RegistryUnavailable, push

    found = _settings_and_engine(args)
    if found is None:
        return 1
    settings, api = found
    try:
        nodes = [node_from(n) for n in api.nodes()]
        target = [n for n in nodes if args.node in (n.hostname, n.id)
                  or (len(args.node) >= 6 and n.id.startswith(args.node))]
        if len(target) != 1:
            print(f"no single node named {args.node!r}; nodes: "
                  f"{', '.join(n.hostname for n in nodes)}", file=sys.stderr)
            return 1
        if not target[0].usable:
            print(f"node {target[0].describe()} is {target[0].state}/"
                  f"{target[0].availability}; choose a ready, active one", file=sys.stderr)
            return 1
        home = _one_home(api, args.user)
        if home is None:
            return 1
        registry, _ = registry_for(settings, swarm_address(settings))
        helper = BaseImageRecipe(mirror=settings.base_image_mirror).rootfs_tag()
        print(f"pushing the helper image {helper} to {registry.address}")
        image = push(api, helper, registry, lambda line: None)
        auth = registry.auth_config()
        if auth:  # the nodes pull it with the project's credentials
            api.login(auth["username"], auth["password"], registry=registry.address,
                      reauth=True)
        started = time.monotonic()
        # persistent services keep their data beside the files: <volume>-<kind>
        service_volumes = tuple(f"{home.volume}-{s.name}" for s in settings.services
                                if s.enabled and s.persistent)
        sent = asyncio.run(move(api, home, target[0].id, image, service_volumes, say=print))
    except (HomeError, NotInSwarm, RegistryUnavailable) as e:
        print(e, file=sys.stderr)
        return 1
    except DockerException as e:
        print(f"the swarm refused a step of the move: {getattr(e, 'explanation', '') or e}; "
              "the files stay where they were", file=sys.stderr)
        return 1
    print(f"{args.user}'s files are now on {target[0].describe()} ({sent}, "
          f"{time.monotonic() - started:.1f} s); the old copy of {home.volume} stays on "
          f"node {home.node_id[:12]}: remove it there once they are happy")
    return 0


def cmd_forget_home(args) -> int:
    from .homes import forget
    from .nodes import READY, node

    found = _settings_and_engine(args)
    if found is None:
        return 1
    _, api = found
    home = _one_home(api, args.user)
    if home is None:
        return 1
    where = node(api, home.node_id)
    if where is not None and where.state == READY:
        print(f"{args.user}'s files are on {where.describe()}, which is up: move them with "
              "'tljh-rees swarm move-home' instead", file=sys.stderr)
        return 1
    forget(api, home.volume)
    print(f"forgot that {args.user}'s files ({home.volume}) are on node "
          f"{home.node_id[:12]}; their next server starts with an empty folder")
    return 0
