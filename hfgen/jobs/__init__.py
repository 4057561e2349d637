"""Jobs on data or on a trained output folder: load, sample, score, write tables, figures and the model card.

- `evaluate` (`hfgen evaluate`): every metric of one sampler next to the real-data floor, into ``metrics.json``.
- `compare_samplers` (`hfgen compare-samplers`): quality and speed of several diffusion samplers of one model.
- `compare` (`hfgen compare`): every family trained on the same data and budget, the trilemma measured.
- `ood` (`hfgen ood`): out-of-distribution detection with a flow's likelihood.
- `explore` (`hfgen explore`): latent-space figures of an autoencoder or VAE.

`hfgen.metrics` keeps the pure scores of tensors that these jobs call.
"""
