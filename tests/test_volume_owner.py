"""A user's volume from a hostile builder's side, against the real Docker and Hub.

A builder (not an admin) controls everything in their image: ENTRYPOINT, /etc/passwd,
what lies at ~/work. A new user's first launch of their environment must neither run
any of it as root with the user's volume mounted, nor copy the image's files into the
volume; the volume must belong to the image's user, and the server must work.
"""

from __future__ import annotations

import os

import docker

from tests.helpers import build_through_service, stop_server, wait_ready

# Runs whatever Docker starts from the image, first trying to reach /mnt (where the old
# spawner mounted the new volume, as root) and the image's /etc/shadow.
HOSTILE_ENTRYPOINT = ('["/bin/sh", "-c", "touch /mnt/pwned; cat /etc/shadow > /mnt/stolen '
                      '2>/dev/null; id -u >> /mnt/stolen; exec \\"$@\\"", "--"]')


def hostile_dockerfile(base_image: str, last_user: str = "jovyan") -> str:
    return (f"FROM {base_image}\n"
            "USER root\n"
            # what Docker would copy into an empty volume mounted there
            "RUN mkdir -p /home/jovyan/work && echo planted > /home/jovyan/work/planted\n"
            "COPY --chown=1000:1000 . /home/jovyan/\n"
            f"ENTRYPOINT {HOSTILE_ENTRYPOINT}\n"
            f"USER {last_user}\n")


def user_volume(user: str):
    volumes = docker.from_env().volumes.list(filters={"label": f"org.tljh-rees.user={user}"})
    return volumes[0] if volumes else None


def test_a_builders_image_never_prepares_a_new_users_volume(hub, base_image, git_repo,
                                                             unique):
    env = unique("volume-trap")
    build_through_service(hub, git_repo(), base_image,
                          {"Dockerfile": hostile_dockerfile(base_image), "README.md": "# hi\n"},
                          env, token=hub.user_token("builder"))
    user = unique("newcomer")
    token = hub.user_token(user)
    assert user_volume(user) is None
    r = hub.rees("POST", "applications", token=token, json={"environment": env})
    assert r.status_code == 201, r.text
    wait_ready(hub, user, env, token=token)

    volume = user_volume(user)
    folder = volume.attrs["Mountpoint"]
    found = sorted(os.listdir(folder))
    assert "pwned" not in found and "stolen" not in found, found
    assert "planted" not in found, found  # the image's ~/work was not copied in
    assert (os.stat(folder).st_uid, os.stat(folder).st_gid) == (1000, 1000)

    # the server works: it writes to ~/work, as the image's user
    r = hub.request("PUT", f"/user/{user}/{env}/api/contents/work/notes.txt", token=token,
                    json={"type": "file", "format": "text", "content": "mine"})
    assert r.status_code in (200, 201), r.text
    assert os.stat(os.path.join(folder, "notes.txt")).st_uid == 1000
    assert not {"pwned", "stolen"} & set(os.listdir(folder))
    stop_server(hub, user, env, token)


def test_an_image_that_runs_as_root_is_refused_with_a_message(hub, base_image, git_repo,
                                                              unique):
    env = unique("root-image")
    build_through_service(hub, git_repo(), base_image,
                          {"Dockerfile": hostile_dockerfile(base_image, last_user="root")},
                          env, token=hub.user_token("builder"))
    user = unique("cautious")
    token = hub.user_token(user)
    r = hub.request("POST", f"/hub/api/users/{user}/servers/{env}", token=token,
                    json={"environment": env})
    # refused before any container: the Hub, which waits 10 s for a start, says why
    assert r.status_code == 409, r.text
    assert "runs as root (USER root)" in r.json()["message"]
    assert not docker.from_env().containers.list(
        all=True, filters={"label": f"org.tljh-rees.user={user}"})
    assert user_volume(user) is None
