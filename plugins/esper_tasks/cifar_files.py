"""Reading CIFAR's python batch files without ever running code from them.

Why our own reader: the official files are pickles, and ``pickle.load`` (what torchvision's CIFAR10 uses)
calls any importable function a file names. A dataset folder is untrusted input (it may come with a run
directory someone shared, or from any download), and an MD5 check only helps when it is on and the
official files are what is expected. So every batch file goes through ``RestrictedUnpickler``, whatever
the checksum setting: it resolves only the names a numpy array needs (``ndarray``, ``dtype``, the array
and scalar reconstructors, latin-1 bytes) and refuses every other global, so a crafted file fails with
``DatasetFormatError`` naming the file and the refused name instead of running anything. What comes out
is checked against the CIFAR batch layout (a dict of str/bytes keys; a uint8 ``data`` array [N, 3072] and
one integer label per row) before it is used.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from esper_core.api import DatasetFormatError

#: A CIFAR-10 batch file is ~30 MB; anything far larger is not one (and is not read into memory).
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Values per image in a batch row: 3 planes of 32 x 32.
ROW_VALUES = 3 * 32 * 32


def _latin1_bytes(text: Any, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """What ``_codecs.encode`` does for the bytes a protocol-2 pickle of Python 3 writes, and nothing else."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in {"latin1", "iso88591"}:
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed for latin-1 text; got encoding {encoding!r}")
    return text.encode("latin-1", errors)


def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The only names a batch file may refer to: numpy's array/scalar/dtype reconstructors and bytes."""
    reconstruct = np.zeros(1).__reduce__()[0]  # numpy._core.multiarray._reconstruct (numpy.core in 1.x)
    scalar = np.float64(0).__reduce__()[0]  # numpy._core.multiarray.scalar
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``_allowed_globals`` and no persistent ids."""

    def __init__(self, file: io.BufferedIOBase, *, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a CIFAR batch file holds only numpy arrays, "
                "lists, numbers and strings"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: a CIFAR batch file has none")


def load_batch_file(path: Path) -> dict[str, Any]:
    """One batch file as a dict with str keys; any other content is a ``DatasetFormatError`` naming ``path``."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DatasetFormatError(
                f"{path} is {size} bytes; a CIFAR batch file is about 30 MB (at most {MAX_FILE_BYTES} read)"
            )
        raw = path.read_bytes()  # a length field of a damaged file then cannot ask for more than the file
    except OSError as error:
        raise DatasetFormatError(f"{path} cannot be read: {error.strerror or error}") from error
    try:
        content = RestrictedUnpickler(io.BytesIO(raw)).load()
    except DatasetFormatError:
        raise
    except Exception as error:  # a damaged or hostile file: any failure of the reader means "not a batch file"
        raise DatasetFormatError(
            f"{path} is not a CIFAR python batch file ({type(error).__name__}: {error}); delete the folder and "
            "download the official release again (`esper run --task cifar10 --download`)"
        ) from error
    if not isinstance(content, dict) or not all(isinstance(key, (str, bytes)) for key in content):
        raise DatasetFormatError(f"{path} holds a {type(content).__name__}, expected a dict with string keys")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 NHWC [N, 32, 32, 3] and int64 labels [N] of one training or test batch file."""
    content = load_batch_file(path)
    data = content.get("data")
    labels = content.get("labels", content.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_VALUES:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: 'data' must be a uint8 array [N, {ROW_VALUES}]; got {got}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != data.shape[0]:
        raise DatasetFormatError(f"{path}: 'labels' must list one class per image row ({data.shape[0]} rows)")
    values = np.asarray(labels)
    if values.dtype.kind not in "iu" or values.ndim != 1:
        raise DatasetFormatError(f"{path}: 'labels' must be integers; got {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= 10):
        raise DatasetFormatError(f"{path}: 'labels' must lie in 0..9 (CIFAR-10); found {int(values.min())}..{int(values.max())}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), values.astype(np.int64)


def class_names(path: Path) -> list[str]:
    """``label_names`` of ``batches.meta`` (ten names)."""
    names = load_batch_file(path).get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names) or len(names) != 10:
        raise DatasetFormatError(f"{path}: 'label_names' must list the 10 class names")
    return [n.decode("latin-1") if isinstance(n, bytes) else n for n in names]
