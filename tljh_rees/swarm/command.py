"""``tljh-rees swarm join-command``: what an admin runs on a new machine to add it.

It prints the engine's worker join command and, for the registry this project runs, the
lines that make the new machine's engine trust the project's CA (so it can pull builds).
The join token lets a machine join: the output is for the admin's terminal only.
"""

from __future__ import annotations

import os
import sys

TLJH_CONFIG = "/opt/tljh/config/config.yaml"


def add_swarm_parser(sub) -> None:
    swarm = sub.add_parser("swarm", help="multi-node mode (rees.swarm)")
    commands = swarm.add_subparsers(dest="swarm_command", required=True)
    join = commands.add_parser("join-command",
                               help="print the commands that make a machine a worker")
    join.add_argument("--config", default=TLJH_CONFIG,
                      help="a YAML file with a 'rees:' section (default: TLJH's)")
    join.add_argument("--state-dir", help="the service's state folder "
                                          "(default: rees.state_dir)")
    join.set_defaults(func=cmd_join_command)


def cmd_join_command(args) -> int:
    import docker
    import yaml

    from ..settings import SettingsError, parse_settings
    from .nodes import NotInSwarm, join_command, manager_address

    try:
        with open(args.config) as f:
            settings = parse_settings((yaml.safe_load(f) or {}).get("rees"))
    except (OSError, SettingsError) as e:
        print(e, file=sys.stderr)
        return 1
    api = docker.APIClient(version="auto", timeout=30, **docker.utils.kwargs_from_env())
    try:
        registry, ca_file = settings.swarm.registry, ""
        if not registry:  # ours: its address and CA
            host = settings.swarm.advertise_address or manager_address(api)
            registry = f"{host}:{settings.swarm.registry_port}"
            ca_file = os.path.join(args.state_dir or settings.state_dir, "swarm", "registry",
                                   "tls", "ca.crt")
            if not os.path.exists(ca_file):
                print(f"no CA at {ca_file}: start the Hub with rees.swarm.enabled first",
                      file=sys.stderr)
                return 1
        print(join_command(api, registry, ca_file))
    except NotInSwarm as e:
        print(e, file=sys.stderr)
        return 1
    return 0
