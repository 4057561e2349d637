"""The training data of one run and the seeded order it is drawn in (used by `hfgen.training.trainer`).

`open_training_data` opens the images (resolution and channels resolved, the objective configured) and holds them
as uint8 in memory or, with ``--lazy_loading``, decodes them per batch in DataLoader workers. `TrainingData` hands
out micro-batches by index: the order of epoch ``e`` is a permutation drawn from a generator seeded by
``derived_seed(seed, "epoch", e)`` and the noise of micro-batch ``i`` on process ``p`` from
``derived_seed(seed, "noise", i, p)``, so neither depends on how many steps ran before (exact resumption).
"""

from __future__ import annotations

import numpy as np
import torch

from hfgen.errors import DatasetError
from hfgen.training.arguments import LAZY_LOADING_THRESHOLD_GB


def derived_seed(*keys: int | str) -> int:
    """A 63-bit seed derived from integers and strings with `numpy.random.SeedSequence` (stable everywhere)."""
    entropy = [k % (1 << 64) if isinstance(k, int) else int.from_bytes(str(k).encode(), "little") for k in keys]
    low, high = np.random.SeedSequence(entropy).generate_state(2, np.uint32).tolist()
    return ((high << 32) | low) & ((1 << 63) - 1)


class TrainingData:
    """The training images of one run, handed out as seeded micro-batches for one process.

    Args:
        images (`torch.Tensor`, *optional*): all images, uint8 ``(N, C, H, W)``; None when decoded lazily.
        decoder (`hfgen.data.images.ImageDecoder`): decodes images by index (the lazy path, and the DataLoader's
            data set).
        num_images (`int`): N.
        seed (`int`): the run's ``--seed``.
        batch_size (`int`): ``--train_batch_size``, images per micro-batch and process.
        num_processes (`int`), process_index (`int`): the accelerator's processes and this one's rank.
        device (`torch.device`): where batches and labels are moved.
        num_workers (`int`): ``--dataloader_num_workers`` of the lazy path.
        labels (`numpy.ndarray`, *optional*): int labels ``(N,)`` of a ``--class_conditional`` run, else None.
        num_classes (`int`, *optional*), id2label (`dict`, *optional*), label_source (`str`, *optional*): facts about
            the labels (see `TrainingContext`), kept for the loop.

    Raises:
        DatasetError: fewer images than one global batch (``batch_size x num_processes``).
    """

    def __init__(
        self,
        images,
        decoder,
        num_images: int,
        *,
        seed: int,
        batch_size: int,
        num_processes: int,
        process_index: int,
        device,
        num_workers: int = 0,
        labels=None,
        num_classes: int | None = None,
        id2label: dict[int, str] | None = None,
        label_source: str | None = None,
    ):
        global_batch = batch_size * num_processes
        if num_images < global_batch:
            raise DatasetError(
                f"the data set has {num_images} images, fewer than one batch of {global_batch} "
                f"(--train_batch_size {batch_size} x {num_processes} processes); "
                "lower --train_batch_size or add images"
            )
        self.images, self.decoder, self.num_images = images, decoder, num_images
        self.seed, self.batch_size, self.device, self.num_workers = seed, batch_size, device, num_workers
        self.num_processes, self.process_index = num_processes, process_index
        self.labels, self.num_classes, self.id2label, self.label_source = labels, num_classes, id2label, label_source
        self.batches_per_epoch = num_images // global_batch
        self._permutations: dict[int, torch.Tensor] = {}
        self._loader_iterator = None
        self._loader_next = None

    def indices(self, micro_index: int) -> torch.Tensor:
        """The image indices `(B,)` of micro-batch ``micro_index`` for this process: a slice of epoch ``e``'s
        permutation, drawn from a generator seeded by ``(seed, e)``, so the order never depends on how training got
        here."""
        epoch, position = divmod(micro_index, self.batches_per_epoch)
        if epoch not in self._permutations:
            self._permutations = {
                epoch: torch.randperm(
                    self.num_images,
                    generator=torch.Generator().manual_seed(derived_seed(self.seed, "epoch", epoch)),
                )
            }
        size = self.batch_size
        start = position * size * self.num_processes + self.process_index * size
        return self._permutations[epoch][start : start + size]

    def images_at(self, indices) -> torch.Tensor:
        """Training images ``indices`` as float32 ``(B, C, H, W)`` in [-1, 1] on the CPU (decoded now when lazy)."""
        from hfgen.data.images.transforms import uint8_to_float

        if self.images is not None:
            return uint8_to_float(self.images[torch.as_tensor(indices)])
        return uint8_to_float(self.decoder.decode_batch(list(indices)))

    def labels_at(self, micro_index: int) -> torch.Tensor | None:
        """The class labels `(B,)` of micro-batch ``micro_index`` (the same indices as `batch`) on the device, or
        None when the run is not class-conditional."""
        if self.num_classes is None:
            return None
        indices = self.indices(micro_index)
        return torch.as_tensor(self.labels[indices.numpy()], dtype=torch.long).to(self.device)

    def batch(self, micro_index: int) -> torch.Tensor:
        """Micro-batch ``micro_index`` as float32 ``(B, C, H, W)`` in [-1, 1] on the device.

        Raises:
            DatasetError: a DataLoader worker of the lazy path could not decode an image (one line).
        """
        if self.images is not None:
            return self.images_at(self.indices(micro_index)).to(self.device)
        from hfgen.data.images.transforms import uint8_to_float

        if self._loader_next != micro_index:  # first batch, or a jump (resume): restart the loader there
            self.close()
            self._loader_iterator = iter(self._make_loader(micro_index))
        self._loader_next = micro_index + 1
        try:
            batch = next(self._loader_iterator)
        except DatasetError as err:  # re-raised from a worker with its traceback in the message: keep one line
            lines = [line for line in str(err).splitlines() if line.strip()]
            last = lines[-1].split("DatasetError: ", 1)[-1] if lines else str(err)
            raise DatasetError(last) from None
        return uint8_to_float(batch).to(self.device)

    def noise_generator(self, micro_index: int) -> torch.Generator:
        """The CPU generator of micro-batch ``micro_index`` on this process, seeded by ``(seed, index, process)``."""
        seed = derived_seed(self.seed, "noise", micro_index, self.process_index)
        return torch.Generator().manual_seed(seed)

    def close(self) -> None:
        """Stop the DataLoader's worker processes (lazy loading) and forget the iterator."""
        iterator, self._loader_iterator, self._loader_next = self._loader_iterator, None, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()

    def _make_loader(self, first_micro_index: int):
        """A `torch.utils.data.DataLoader` decoding the micro-batches ``first_micro_index, +1, ...`` in the seeded
        order of `indices` with ``num_workers`` workers."""
        from torch.utils.data import DataLoader

        data = self

        class _SeededBatches(torch.utils.data.Sampler):
            def __iter__(self):
                index = first_micro_index
                while True:
                    yield data.indices(index).tolist()
                    index += 1

        workers = self.num_workers
        return DataLoader(
            self.decoder,
            batch_sampler=_SeededBatches(),
            num_workers=workers,
            prefetch_factor=4 if workers else None,
        )


def open_training_data(data_args, training_args, objective, model_args, accelerator) -> TrainingData:
    """Open the training images, fix resolution and channels, let the objective check them (`Objective.configure`),
    then hold the images in memory as uint8 ``(N, C, H, W)`` or (``--lazy_loading``) decode them per batch.

    Resolves ``data_args.resolution``, ``num_channels``, ``held_out_size`` and ``lazy_loading`` in place (they are
    recorded in ``training_args.json``).

    Raises:
        DatasetError: unusable data, too few images for one batch, or labels unfit for ``--class_conditional``.
    """
    from hfgen.data.images.decoding import ImageDecoder, decode_images, readable_images
    from hfgen.data.images.formats import DIGITS_RESOLUTION
    from hfgen.data.images.source import open_image_source, resolve_held_out_size

    data = data_args
    with accelerator.main_process_first():
        source = open_image_source(
            dataset_name=data.dataset_name,
            train_data_dir=data.train_data_dir,
            split="train",
            dataset_config_name=data.dataset_config_name,
            cache_dir=data.cache_dir,
            image_column=data.image_column,
            held_out_size=data.held_out_size,
            attribute_file=data.attribute_file,
            attribute=data.attribute,
        )
        data.held_out_size = resolve_held_out_size(data.dataset_name, data.train_data_dir, data.held_out_size)
        if data.max_train_samples is not None and data.max_train_samples < len(source):
            source = source.select(range(data.max_train_samples))
        channels, height, width = source.native_size()
        if data.resolution is None:
            data.resolution = DIGITS_RESOLUTION if source.name == "digits" else min(height, width)
        if data.num_channels is None:
            data.num_channels = channels
        objective.configure(data.resolution, data.num_channels, model_args)
        decoder = ImageDecoder(source, data.resolution, data.num_channels, data.center_crop)
        pixels = len(source) * data.num_channels * data.resolution**2
        lazy = data.lazy_loading if data.lazy_loading is not None else pixels > LAZY_LOADING_THRESHOLD_GB * 1e9
        data.lazy_loading = bool(lazy)  # recorded resolved in training_args.json
        if lazy:  # unreadable files are skipped now (a header check), as the in-memory store skips them
            source = readable_images(source)
            decoder = ImageDecoder(source, data.resolution, data.num_channels, data.center_crop)
            images, labels = None, source.labels
        else:
            images, labels = decode_images(decoder, show_progress=accelerator.is_main_process)
    num_classes, id2label = class_names(source, labels, training_args.class_conditional)
    return TrainingData(
        images,
        decoder,
        len(source) if images is None else len(images),
        seed=training_args.seed,
        batch_size=training_args.train_batch_size,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        device=accelerator.device,
        num_workers=data.dataloader_num_workers,
        labels=labels if num_classes else None,
        num_classes=num_classes,
        id2label=id2label,
        label_source=source.label_source if labels is not None else None,
    )


def class_names(source, labels, class_conditional: bool) -> tuple[int | None, dict[int, str] | None]:
    """``(num_classes, id2label)`` of a ``--class_conditional`` run, read from ``labels`` (int ``(N,)`` or None) of
    the image source ``source``; ``(None, None)`` otherwise.

    Raises:
        DatasetError: the data has no labels, negative labels, or a single class.
    """
    if not class_conditional:
        return None, None
    if labels is None:
        raise DatasetError(
            f"--class_conditional trains on the data's labels, and {source.name} has none; use a data set with a "
            "label column (the digits, an image folder with class sub-folders, a .npy with <name>_labels.npy) or "
            "--attribute_file with --attribute, or drop --class_conditional"
        )
    if len(labels) and int(labels.min()) < 0:
        raise DatasetError(f"--class_conditional needs class labels 0, 1, ...; {source.name} has negative labels")
    num_classes = int(labels.max()) + 1
    if num_classes < 2:
        raise DatasetError(f"--class_conditional needs at least 2 classes; {source.name} has labels 0 only")
    names = source.label_names if source.label_names and len(source.label_names) >= num_classes else None
    id2label = {i: (names[i] if names else str(i)) for i in range(num_classes)}
    return num_classes, id2label
