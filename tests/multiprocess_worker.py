"""Run by tests/test_multiprocess.py under `accelerate launch --num_processes 2 --cpu`:

    multiprocess_worker.py MODEL KWARGS_JSON DIGEST_DIR

trains ``MODEL`` with `hfgen.train` (the same code path as `hfgen train`), then writes
``DIGEST_DIR/rank<RANK>.json`` with a SHA-256 of every trained parameter this rank holds, so that the test can check
that the ranks end with identical weights.
"""

import hashlib
import json
import os
import sys

from hfgen.training.launch import respawn_cpu_workers


def main(model: str, kwargs_json: str, digest_dir: str) -> None:
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
    result = hfgen.train(objective, **json.loads(kwargs_json))
    digest = hashlib.sha256()
    for name in sorted(captured):
        for parameter_name, parameter in sorted(captured[name].named_parameters()):
            digest.update(f"{name}.{parameter_name}".encode())
            digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    os.makedirs(digest_dir, exist_ok=True)
    with open(os.path.join(digest_dir, f"rank{os.environ.get('RANK', '0')}.json"), "w") as handle:
        json.dump({"digest": digest.hexdigest(), "global_step": result.global_step}, handle)


if __name__ == "__main__":
    respawn_cpu_workers(__file__, sys.argv[1:])
    main(*sys.argv[1:4])
