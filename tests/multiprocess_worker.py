"""Run by tests/test_multiprocess.py under `accelerate launch --num_processes 2 --cpu`:

    multiprocess_worker.py JOBS_JSON DIGEST_DIR

``JOBS_JSON`` is a file with a list of ``{"name": ..., "model": ..., "kwargs": {...}}``. Each job trains ``model`` with
`hfgen.train` (the same code path as `hfgen train`), one after the other in the same two processes, then writes
``DIGEST_DIR/<name>/rank<RANK>.json`` with a SHA-256 of every trained parameter this rank holds, so that the test can
check that the ranks end with identical weights. One launch for every job: starting two gloo processes costs more than
training a tiny model.
"""

import hashlib
import json
import os
import sys

from hfgen.training.launch import respawn_cpu_workers


def train_and_digest(model: str, kwargs: dict, digest_dir: str) -> None:
    import hfgen
    from hfgen.training.objectives import get_objective

    objective = get_objective(model)
    captured = {}
    build_models = objective.build_models

    def capture(context):
        models = build_models(context)
        captured.update(models)  # the modules themselves: DDP wraps them without copying their parameters
        return models

    objective.build_models = capture
    result = hfgen.train(objective, **kwargs)
    digest = hashlib.sha256()
    for name in sorted(captured):
        for parameter_name, parameter in sorted(captured[name].named_parameters()):
            digest.update(f"{name}.{parameter_name}".encode())
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    os.makedirs(digest_dir, exist_ok=True)
    with open(os.path.join(digest_dir, f"rank{os.environ.get('RANK', '0')}.json"), "w") as handle:
        steps_run = len(result.step_seconds)
        record = {"digest": digest.hexdigest(), "global_step": result.global_step, "steps_run": steps_run}
        json.dump(record, handle)


def main(jobs_json: str, digest_dir: str) -> None:
    from accelerate.state import PartialState

    # `Accelerator.end_training` destroys the process group at the end of every run; the next job of this launch
    # trains in the same group, so it is kept until the last job is done.
    destroy = PartialState.destroy_process_group
    PartialState.destroy_process_group = lambda self, group=None: None
    with open(jobs_json) as handle:
        jobs = json.load(handle)
    for job in jobs:
        train_and_digest(job["model"], job["kwargs"], os.path.join(digest_dir, job["name"]))
    destroy(PartialState())


if __name__ == "__main__":
    respawn_cpu_workers(__file__, sys.argv[1:])
    main(*sys.argv[1:3])
