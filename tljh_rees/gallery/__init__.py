"""The gallery: what is inside each built environment, readable without starting it.

An environment's repository files are copied out of its image (never run), indexed
(notebooks, README, declared packages) and its notebooks rendered to static HTML, all
cached per image id under ``{state_dir}/gallery/``.
"""
