"""The Slurm launch target: a server run as a Slurm job from the environment's image
(settings, the user's request, image staging, the job, the spawner)."""
