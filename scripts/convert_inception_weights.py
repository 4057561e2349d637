"""Convert pytorch-fid's Inception weights (``pt_inception-2015-12-05-6726825d.pth``) to safetensors, once.

    python scripts/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth inception.safetensors

hfgen loads weights from safetensors only. This script reads the .pth with ``torch.load(weights_only=True)`` (no
pickled code is executed), checks that it fits `hfgen.metrics.inception.FIDInceptionV3`, and writes the
safetensors file that ``--features inception:PATH`` takes.
"""

import sys

import torch
from safetensors.torch import save_file


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, target = sys.argv[1], sys.argv[2]
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = {k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    from hfgen.metrics.inception import FIDInceptionV3

    missing, unexpected = FIDInceptionV3().load_state_dict(
        {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}, strict=False
    )
    if missing or unexpected:
        sys.exit(f"{source} does not fit FIDInceptionV3: missing {missing[:5]}, unexpected {unexpected[:5]}")
    save_file(state, target)
    print(f"wrote {target} ({len(state)} tensors)")


if __name__ == "__main__":
    main()
