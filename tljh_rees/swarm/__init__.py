"""Multi-node mode on Docker Swarm (``rees.swarm``).

The Hub and the rees service stay on the TLJH machine, a Swarm manager; other machines
join as workers. Builds are pushed to a registry every node can pull from (by default one
the Hub runs on the manager, with TLS from a local CA), and servers run as Swarm services
on any node that fits their profile. Single-machine installs never import this package.
"""
