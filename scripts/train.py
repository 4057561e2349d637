"""`accelerate launch scripts/train.py MODEL [flags]` — the same code path as `hfgen train MODEL [flags]`.

Examples:
    accelerate launch --num_processes 2 --cpu scripts/train.py ddpm --max_train_steps 200 --output_dir outputs/ddp
    accelerate launch --multi_gpu --num_processes 4 scripts/train.py ddpm --mixed_precision fp16
"""

import sys

from hfgen.cli import main
from hfgen.training.launch import respawn_cpu_workers

if __name__ == "__main__":
    respawn_cpu_workers(__file__, sys.argv[1:])
    main(["train", *sys.argv[1:]])
