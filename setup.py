from setuptools import find_packages, setup

setup(
    name="tljh-rees",
    version="0.1.0",
    description="A Binder-like service for The Littlest JupyterHub: build REES repositories "
    "into environments with repo2docker, launch them, export them for HPC.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    packages=find_packages(include=["tljh_rees", "tljh_rees.*", "tljh_rees_lab"]),
    include_package_data=True,
    package_data={
        "tljh_rees": [
            "templates/*.html",
            "hub_templates/*.html",
            "static/*",
            "store/migrations/*.py",
            "store/migrations/versions/*.py",
        ],
        # built by scripts/build-lab-extension.sh before a wheel is made
        "tljh_rees_lab": ["etc/jupyter_server_config.d/*.json", "share/labextensions/**/*"],
    },
    install_requires=[
        "jupyterhub>=5.2,<7",
        "dockerspawner>=13,<15",
        "docker>=7,<8",
        "jupyter-repo2docker>=2025.8",
        "traitlets>=5.9,<6",
        "tornado>=6.2,<7",
        "sqlalchemy>=2.0,<3",
        "alembic>=1.12,<2",
        "jinja2>=3.1,<4",
        "pluggy>=1.0,<2",
        "packaging>=23",
        "pyyaml>=6,<7",
        "nbconvert>=7.17.1,<8",
        "nbformat>=5.9,<6",
        "mistune>=3,<4",
        "beautifulsoup4>=4.9,<5",  # the gallery resolves notebook images in its HTML
        "oras>=0.2,<0.3",
        "requests>=2.28,<3",  # tljh-rees client
        "prometheus_client>=0.17,<1",  # GET metrics
        "batchspawner>=1.3,<2",  # the Slurm launch target (tljh_rees/hpc/)
        "cryptography>=41",  # rees.swarm: the registry's local CA
        "bcrypt>=4,<6",  # rees.swarm: the registry's htpasswd
    ],
    entry_points={
        "tljh": ["rees = tljh_rees.plugin"],
        "console_scripts": [
            "tljh-rees = tljh_rees.cli:main",
            "repo2singularity = tljh_rees.export.command:repo2singularity_main",
        ],
    },
)
