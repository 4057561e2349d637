"""`accelerate launch scripts/train.py MODEL [flags]` — the same code path as `hfgen train MODEL [flags]`.

Example (two CPU processes):
    accelerate launch --num_processes 2 --cpu scripts/train.py ddpm --max_train_steps 200 --output_dir outputs/ddp
"""

import sys

from hfgen.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
