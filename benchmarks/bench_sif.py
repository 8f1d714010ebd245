"""SIF assembly time against plain mksquashfs of the same root filesystem.

    .venv/bin/python benchmarks/bench_sif.py [--image IMAGE] [--repeat N]

Unpacks IMAGE (default: the newest local tljh-rees/base image) once, adds the
/.singularity.d tree, then times, alternately and N times each, a plain ``mksquashfs`` of
that directory and the SIF assembly from it (mksquashfs + siftool objects + launch line),
and prints a table with the best time of each and their ratio (goal: at most 1.3).
The export of the image (docker export + tar) is timed too, but is the same work for
any converter, so it stays out of the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import docker  # noqa: E402

from tljh_rees.export.convert import remove_tree  # noqa: E402
from tljh_rees.export.image import export_rootfs, inspect_image  # noqa: E402
from tljh_rees.export.progress import Progress  # noqa: E402
from tljh_rees.export.sif import assemble_sif  # noqa: E402
from tljh_rees.export.singularity_d import SifMetadata, write_tree  # noqa: E402

GOAL = 1.3


def newest_base_image(api) -> str:
    images = api.images(name="tljh-rees/base")
    if not images:
        sys.exit("no tljh-rees/base image here: run 'tljh-rees base-image' or pass --image")
    newest = max(images, key=lambda i: i["Created"])
    return newest["RepoTags"][0]


class StepClock(Progress):
    """Notes when each step starts, to split the SIF time into mksquashfs and siftool."""

    def __init__(self):
        super().__init__()
        self.starts = []

    def step(self, name, total=None, unit="bytes"):
        super().step(name, total, unit)
        self.starts.append((name, time.perf_counter()))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="local Docker image (default: newest tljh-rees/base)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (best counts)")
    parser.add_argument("--work-dir", default=None, help="scratch space (default: $TMPDIR)")
    args = parser.parse_args()

    api = docker.APIClient(version="auto", timeout=600)
    image = inspect_image(api, args.image or newest_base_image(api))
    work = tempfile.mkdtemp(prefix="bench-sif-", dir=args.work_dir)
    try:
        root = os.path.join(work, "rootfs")
        os.mkdir(root)
        export_s = timed(lambda: export_rootfs(api, image, root, Progress()))
        metadata = SifMetadata.for_image(image, "bench", "bench")
        write_tree(root, metadata)
        size = int(subprocess.run(["du", "-sb", root], capture_output=True, text=True,
                                  check=True).stdout.split()[0])

        plain_out = os.path.join(work, "plain.squashfs")
        sif_out = os.path.join(work, "image.sif")
        plain, sif, siftool = [], [], []
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
            plain.append(timed(lambda: subprocess.run(
                ["mksquashfs", root, plain_out, "-noappend", "-quiet", "-no-progress"],
                check=True, stdout=subprocess.DEVNULL)))
            clock = StepClock()
            sif.append(timed(lambda: assemble_sif(root, metadata, image.architecture,
                                                  sif_out, work, clock)))
            writing = [t for name, t in clock.starts if name.startswith("Writing the SIF")]
            siftool.append(clock.starts[0][1] + sif[-1] - writing[0])
        squashfs_size = os.path.getsize(plain_out)
        sif_size = os.path.getsize(sif_out)
    finally:
        remove_tree(work)

    ratio = min(sif) / min(plain)
    rows = [
        ("image", image.reference),
        ("root filesystem", f"{size / 1e6:.0f} MB"),
        ("squashfs / SIF size", f"{squashfs_size / 1e6:.1f} MB / {sif_size / 1e6:.1f} MB"),
        ("export (docker export + tar)", f"{export_s:.1f} s"),
        ("plain mksquashfs (best)", f"{min(plain):.1f} s  (runs: "
                                    + ", ".join(f"{t:.1f}" for t in plain) + ")"),
        ("SIF assembly (best)", f"{min(sif):.1f} s  (runs: "
                                + ", ".join(f"{t:.1f}" for t in sif) + ")"),
        ("of which siftool (best)", f"{min(siftool):.1f} s  (runs: "
                                    + ", ".join(f"{t:.1f}" for t in siftool) + ")"),
        ("ratio SIF / mksquashfs", f"{ratio:.2f}  (goal <= {GOAL}: "
                                   + ("met" if ratio <= GOAL else "NOT met") + ")"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
