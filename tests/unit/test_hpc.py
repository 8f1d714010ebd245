"""The Slurm target's pure parts: ``rees.hpc`` settings, a user's cluster request, the job
script and the container command (the real Slurm runs in tests/test_slurm_launch.py)."""

import shlex
import subprocess

import pytest

from tljh_rees.errors import InputError
from tljh_rees.hpc.choice import ClusterRequest, cluster_request
from tljh_rees.hpc.job import LAUNCHER, container_command, job_name
from tljh_rees.hpc.settings import HpcSettings, format_walltime, walltime_minutes
from tljh_rees.hpc.staging import image_key
from tljh_rees.settings import SettingsError, parse_settings

ON = {"enabled": True, "partitions": ["debug", "long"], "image_dir": "/shared/images",
      "walltimes": ["01:00:00", 30], "max_cpus": 4, "max_memory": "8G"}


def hpc(**over) -> HpcSettings:
    return parse_settings({"hpc": {**ON, **over}}).hpc


def test_settings_defaults_and_round_trip():
    assert parse_settings({}).hpc == HpcSettings()
    settings = hpc()
    assert settings.walltimes == (60, 30) and settings.max_memory == 8 * 1024**3
    assert HpcSettings.from_dict(settings.to_dict()) == settings
    assert settings.unix_name("alice") == "jupyter-alice"


@pytest.mark.parametrize("over, key, words", [
    ({"partitions": ["bad name"]}, "partitions", "Slurm partition names"),
    ({"walltimes": ["1:30"]}, "walltimes", "h:mm:ss or minutes"),
    ({"runtime": "docker"}, "runtime", "charliecloud or apptainer"),
    ({"charliecloud_format": "zip"}, "charliecloud_format", "directory or squashfs"),
    ({"unix_user": "{username}@x"}, "unix_user", "containing {username}"),
    ({"unix_user": "fixed"}, "unix_user", "containing {username}"),
    ({"image_dir": "images"}, "image_dir", "absolute directory path"),
    ({"max_cpus": 0}, "max_cpus", "whole number"),
    ({"queue": 1}, "queue", "unknown setting"),
])
def test_settings_errors_name_the_key(over, key, words):
    with pytest.raises(SettingsError) as info:
        hpc(**over)
    [problem] = info.value.problems
    assert problem.startswith(f"rees.hpc.{key}: ") and words in problem, problem


def test_enabled_needs_partitions_and_an_image_dir():
    with pytest.raises(SettingsError) as info:
        parse_settings({"hpc": {"enabled": True}})
    assert sorted(info.value.problems) == [
        "rees.hpc.image_dir: required when rees.hpc.enabled is true",
        "rees.hpc.partitions: required when rees.hpc.enabled is true"]


def test_walltimes():
    assert walltime_minutes(90) == walltime_minutes("01:30:00") == 90
    assert walltime_minutes("1-00:00:00") == 1440
    for bad in ("1:30", "0", "00:00:30", "1:75:00", True, "soon"):
        with pytest.raises(ValueError):
            walltime_minutes(bad)
    assert format_walltime(90) == "01:30:00" and format_walltime(1500) == "1-01:00:00"


def test_cluster_request_defaults_and_limits():
    settings = hpc()
    assert cluster_request({"environment": "x"}, settings) is None
    assert cluster_request({"target": "cluster"}, settings) == ClusterRequest(
        "debug", 60, 1, 1024**3)
    asked = cluster_request({"target": "cluster", "partition": "long", "walltime": "30",
                             "cpus": "4", "memory": "8G"}, settings)
    assert (asked.slurm_time, asked.slurm_memory, asked.cpus) == ("00:30:00", "8192M", 4)


@pytest.mark.parametrize("options, field, words", [
    ({"partition": "gpu"}, "partition", "choose one of debug, long"),
    ({"walltime": "02:00:00"}, "walltime", "longer than allowed"),
    ({"walltime": "00:45:00"}, "walltime", "not one of the choices"),
    ({"cpus": "5"}, "cpus", "at most 4"),
    ({"cpus": "-1"}, "cpus", "whole number of CPUs"),
    ({"memory": "9G"}, "memory", "at most 8G"),
    ({"memory": "lots"}, "memory", "a size like 2G"),
])
def test_bad_requests_name_the_field(options, field, words):
    with pytest.raises(InputError) as info:
        cluster_request({"target": "cluster", **options}, hpc())
    assert info.value.field == field and words in info.value.message, info.value.message


def test_cluster_fields_need_the_cluster_target_and_an_enabled_site():
    with pytest.raises(InputError, match="only for target 'cluster'"):
        cluster_request({"partition": "debug"}, hpc())
    with pytest.raises(InputError, match="rees.hpc.enabled is false"):
        cluster_request({"target": "cluster"}, HpcSettings())


def test_container_command_runs_the_launcher_in_the_image():
    cmd = container_command("charliecloud", "/shared/a b.d", ["jupyterhub-singleuser", "--x"])
    words = shlex.split(cmd.split(" exec ", 1)[1])
    assert words[:4] == ["ch-run", "--home", "/shared/a b.d", "--"]
    assert words[-3:] == ["rees", "jupyterhub-singleuser", "--x"]
    assert container_command("apptainer", "/s/i.sif", ["j"]).split(" exec ", 1)[1].startswith(
        "apptainer exec /s/i.sif /bin/sh -c")
    assert job_name("al ice", "") == "rees-al_ice" and job_name("a", "s") == "rees-a-s"


def test_launcher_is_valid_python_and_the_token_stays_out_of_the_command():
    compile(LAUNCHER, "launcher", "exec")
    assert "JUPYTERHUB_API_TOKEN" in LAUNCHER  # read from the job's environment only
    cmd = container_command("charliecloud", "/i.d", ["jupyterhub-singleuser"])
    assert "token" not in cmd.lower()
    # the command is one valid shell line
    assert subprocess.run(["bash", "-n", "-c", cmd]).returncode == 0


def test_image_key():
    assert image_key("sha256:" + "ab" * 32) == "ab" * 8
    with pytest.raises(ValueError):
        image_key("tljh-rees/base:latest")


def test_applications_cluster_object_becomes_user_options():
    from tljh_rees.launcher import cluster_options

    assert cluster_options(None, hpc()) == {}
    assert cluster_options({"partition": "debug", "cpus": 2, "memory": None}, hpc()) == {
        "target": "cluster", "partition": "debug", "cpus": "2"}
    for cluster, field in (({"queue": "x"}, "cluster.queue"), ("debug", "cluster"),
                           ({"walltime": "02:00:00"}, "cluster.walltime"),
                           ({"cpus": 9}, "cluster.cpus")):
        with pytest.raises(InputError) as info:
            cluster_options(cluster, hpc())
        assert info.value.field == field, cluster
    with pytest.raises(InputError, match="rees.hpc.enabled is false") as info:
        cluster_options({}, HpcSettings())
    assert info.value.field == "cluster"


def test_the_slurm_target_and_multi_node_mode_do_not_combine_yet():
    with pytest.raises(SettingsError, match=r"rees.hpc.enabled: .*cannot both be on"):
        parse_settings({"hpc": ON, "swarm": {"enabled": True,
                                             "advertise_address": "10.0.0.5"}})
