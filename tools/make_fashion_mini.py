#!/usr/bin/env python3
"""Build assets/fashion-mini: the first 500 training and 100 test images of each Fashion-MNIST class.

Reads the gzip IDX files of the Debian package dataset-fashion-mnist (or the folder given as the first
argument), keeps the original order, and writes gzip IDX files with a fixed header (mtime 0, no file
name) so that running it twice gives identical bytes. Python 3 standard library only.
"""

import gzip
import io
import os
import struct
import sys

TRAIN_PER_CLASS = 500
TEST_PER_CLASS = 100
NUM_CLASSES = 10


def read_idx(path, expected_magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic != expected_magic:
        sys.exit(f"{path}: magic number {magic:#x}, expected {expected_magic:#x}")
    ndims = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return dims, data[4 + 4 * ndims :]


def write_idx_gz(path, magic, dims, payload):
    raw = io.BytesIO()
    raw.write(struct.pack(">I", magic))
    raw.write(struct.pack(">" + "I" * len(dims), *dims))
    raw.write(payload)
    with open(path, "wb") as out:
        # filename="" and mtime=0 keep the gzip header free of anything that changes between runs.
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
            gz.write(raw.getvalue())


def make_split(src, dst, prefix, per_class):
    (count,), labels = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"), 0x801)
    (n, rows, cols), images = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"), 0x803)
    if n != count:
        sys.exit(f"{prefix}: {n} images but {count} labels")
    size = rows * cols
    taken = [0] * NUM_CLASSES
    keep = []
    for i in range(count):
        label = labels[i]
        if taken[label] < per_class:
            taken[label] += 1
            keep.append(i)
    if any(t < per_class for t in taken):
        sys.exit(f"{prefix}: not enough images per class: {taken}")
    out_labels = bytes(labels[i] for i in keep)
    out_images = b"".join(images[i * size : (i + 1) * size] for i in keep)
    write_idx_gz(os.path.join(dst, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, (len(keep),), out_labels)
    write_idx_gz(
        os.path.join(dst, f"{prefix}-images-idx3-ubyte.gz"), 0x803, (len(keep), rows, cols), out_images
    )
    print(f"{prefix}: {len(keep)} images ({per_class} per class)")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dst = os.path.join(root, "assets", "fashion-mini")
    os.makedirs(dst, exist_ok=True)
    make_split(src, dst, "train", TRAIN_PER_CLASS)
    make_split(src, dst, "t10k", TEST_PER_CLASS)


if __name__ == "__main__":
    main()
