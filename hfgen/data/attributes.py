"""Binary attribute labels from a CelebA-format attribute file (``list_attr_celeba.txt``).

The official format (Liu et al. 2015, "Deep Learning Face Attributes in the Wild"): line 1 is the number of images,
line 2 the attribute names separated by white space, then one line per image: its file name followed by one
``-1`` or ``1`` per attribute. `read_attribute_file` parses it; `attribute_labels` turns one attribute into the
0/1 ``label`` column that every hfgen command taking labels uses (``explore``'s attribute vector, evaluation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from hfgen.errors import DatasetError


@dataclass
class AttributeTable:
    """A parsed attribute file.

    Attributes:
        names (`list[str]`): the attribute names, in column order (CelebA: 40, ``Smiling`` is index 31).
        files (`list[str]`): the image file names, in row order.
        values (`np.ndarray` of shape `(len(files), len(names))`, int8): 0/1 (the file's -1 becomes 0).
    """

    names: list[str]
    files: list[str]
    values: np.ndarray

    def column(self, attribute: str) -> int:
        """The column index of ``attribute``.

        Raises:
            DatasetError: for an unknown attribute name; the message lists the valid ones.
        """
        if attribute not in self.names:
            raise DatasetError(
                f"unknown attribute {attribute!r}; valid attributes (case-sensitive): {', '.join(self.names)}"
            )
        return self.names.index(attribute)


def read_attribute_file(path: str) -> AttributeTable:
    """Parse a CelebA-format attribute file.

    Args:
        path (`str`): the text file (count line, names line, one ``file v1 ... vK`` row per image, values -1/1;
            0/1 values are accepted too).

    Returns:
        `AttributeTable` with 0/1 int8 values.

    Raises:
        DatasetError: for a missing file or a malformed line (naming the line number).
    """
    if not os.path.isfile(path):
        raise DatasetError(f"--attribute_file {path} does not exist; pass a CelebA-format list_attr_*.txt file")
    with open(path) as handle:
        lines = [line.split() for line in handle if line.strip()]
    if len(lines) < 3 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise DatasetError(
            f"{path}: not a CelebA-format attribute file (line 1: the image count, line 2: the attribute names, "
            "then one 'file -1 1 ...' row per image)"
        )
    names = lines[1]
    files, rows = [], []
    for number, parts in enumerate(lines[2:], start=3):
        if len(parts) != len(names) + 1:
            raise DatasetError(
                f"{path}, line {number}: expected a file name and {len(names)} values, got {len(parts)} fields"
            )
        try:
            row = [int(v) for v in parts[1:]]
        except ValueError:
            raise DatasetError(f"{path}, line {number}: attribute values must be -1/1 (or 0/1)") from None
        if any(v not in (-1, 0, 1) for v in row):
            raise DatasetError(f"{path}, line {number}: attribute values must be -1/1 (or 0/1)")
        files.append(parts[0])
        rows.append(row)
    values = (np.asarray(rows, dtype=np.int8) > 0).astype(np.int8)
    return AttributeTable(names=names, files=files, values=values)


def attribute_labels(table: AttributeTable, attribute: str, file_names: list[str], source: str = "") -> np.ndarray:
    """The 0/1 labels of ``attribute`` for images named ``file_names`` (matched by base name).

    Returns:
        `np.ndarray` of shape `(len(file_names),)`, int64 0/1.

    Raises:
        DatasetError: for an unknown attribute (listing the valid ones) or images missing from the table (naming
            the first few).
    """
    column = table.column(attribute)
    row_of = {name: i for i, name in enumerate(table.files)}
    bases = [os.path.basename(name) for name in file_names]
    missing = [name for name in bases if name not in row_of]
    if missing:
        where = f" of {source}" if source else ""
        raise DatasetError(
            f"{len(missing)} image(s){where} are missing from the attribute file (first: {', '.join(missing[:5])}); "
            "pass the attribute file that lists every image, or a folder holding only listed images"
        )
    return table.values[[row_of[name] for name in bases], column].astype(np.int64)


__all__ = ["AttributeTable", "attribute_labels", "read_attribute_file"]
