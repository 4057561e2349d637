"""Multi-process CPU training from `accelerate launch --num_processes N --cpu`.

accelerate's launcher starts several CPU workers only through MPI (``--mpirun_hostfile``); without it,
``accelerate launch --num_processes 2 --cpu script.py`` starts ONE process (with ``MASTER_ADDR`` set and
``ACCELERATE_USE_CPU=True``). `respawn_cpu_workers` notices that case and starts the N requested workers itself with
`torch.distributed.run` (gloo backend, picked by accelerate for multi-CPU), so the documented command really trains
with N processes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

DISTRIBUTED_ENV = ("WORLD_SIZE", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def requested_cpu_processes() -> int:
    """Processes that a parent `accelerate launch --cpu --num_processes N` asked for but did not start (else 1)."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1"):
        return 1
    if "MASTER_ADDR" not in os.environ or any(name in os.environ for name in DISTRIBUTED_ENV):
        return 1
    try:
        import psutil

        parent = " ".join(psutil.Process(os.getppid()).cmdline())
    except Exception:
        return 1
    if "accelerate" not in parent:
        return 1
    match = re.search(r"--num[_-]processes[= ](\d+)", parent)
    return int(match.group(1)) if match else 1


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def respawn_cpu_workers(script: str, argv: list[str]) -> None:
    """If `requested_cpu_processes` > 1, run ``script argv`` in that many gloo workers and exit with their code."""
    count = requested_cpu_processes()
    if count <= 1:
        return
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(count),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        script,
        *argv,
    ]
    env = dict(
        os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    )
    sys.exit(subprocess.call(command, env=env))
