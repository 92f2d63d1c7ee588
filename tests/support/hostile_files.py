"""Hostile and damaged inputs for the reliability tests: pickles that run code when unpickled, CIFAR batch
files in the byte layout Python 2 wrote (what the official release holds), damaged archives."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


class RunsCode:
    """Unpickling this creates ``marker`` (through ``exec``): proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _int(value: int) -> bytes:
    if value < 256:
        return b"K" + bytes([value])
    if value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _py2_str(raw: bytes) -> bytes:
    return (b"U" + bytes([len(raw)]) + raw) if len(raw) < 256 else (b"T" + struct.pack("<I", len(raw)) + raw)


def _py2_uint8_array(array: np.ndarray) -> bytes:
    shape = b"(" + b"".join(_int(d) for d in array.shape) + b"t"
    dtype = (
        b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"\x89\x88\x87R"
        + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
        + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(array.tobytes()) + b"tb"
    )


def py2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch file as Python 2's cPickle (protocol 2) wrote CIFAR's: ``numpy.core`` globals, byte strings."""
    body = _py2_str(b"data") + _py2_uint8_array(data)
    body += _py2_str(b"labels") + b"](" + b"".join(_int(label) for label in labels) + b"e"
    body += _py2_str(b"batch_label") + _py2_str(b"training batch 1 of 5")
    return b"\x80\x02}(" + body + b"u."
