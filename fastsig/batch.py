"""σ, σ′ or both applied to arrays on disk, in constant memory: ``fastsig apply``.

>>> from fastsig import batch
>>> batch.apply("scores.npy", "probabilities.npy")                # doctest: +SKIP
>>> batch.apply("x.h5:/logits", ("s.h5", "ds.h5"), op="both")     # doctest: +SKIP

Formats, chosen by the name's suffix (a ``file://`` URL is a path too):

* ``NAME.npy``: memory-mapped a block at a time and written with ``pwrite``,
  in storage order (C or Fortran alike). The header is parsed with
  ``numpy.lib.format``; an object dtype (a pickled array) is refused from
  the header, so nothing is ever unpickled, as ``np.load(...,
  allow_pickle=False)`` would refuse it.
* ``NAME.h5`` (``.hdf5``, ``.hdf``, ``.he5``), optionally ``NAME.h5:/DATASET``,
  through h5py; ``NAME.zarr``, optionally ``NAME.zarr:/ARRAY``, through zarr.
  Without a key, a source must hold exactly one array; a destination gets
  the source's key, else ``data`` (HDF5) or the root array (zarr).

A destination with another suffix gets the source's format. Float16/32/64
keep their dtype (byte order included); integer and bool become float64.
``op="both"`` reads the input once and writes two destinations, σ first
then σ′; they may be two datasets of one HDF5 file or zarr store.

Safety: each destination is written under a hidden temporary name beside it
(``.NAME.fastsig-PID-TOKEN.tmp``) and renamed over it only when complete, so
a killed run leaves the destination as it was; the temporaries of dead runs
are removed by the next run to the same destination. SIGINT and SIGTERM
remove the temporary at once. Without ``fsync=True`` the data reach the
disk when the OS writes them back, as after ``cp``: the rename is atomic
against a killed process, not against a power cut. The input is never
overwritten, except by ``in_place=True`` (``.npy`` only), which rewrites it
chunk by chunk and is *not* atomic: a killed run leaves it part σ(x),
part x. An existing HDF5 file or zarr store holding other arrays than the
ones written is never replaced.

Speed and memory: each of ``threads`` worker threads reads a block (a
``.npy`` block is memory-mapped for just that long), computes it with the
single-threaded kernel into its own output buffers and writes it with
``pwrite``; the copying of some blocks overlaps the arithmetic of others.
Peak memory is two or three chunks per thread above the interpreter's,
whatever the size of the file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import itertools
import math
import mmap
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np

from ._api import sigmoid, sigmoid_and_derivative, sigmoid_derivative
from ._kernels import get_num_threads, num_threads

__all__ = ["apply", "BatchError", "DEFAULT_CHUNK_BYTES", "OPS"]

PathLike = Union[str, "os.PathLike[str]"]

#: Bytes per block and buffer: a system call and a map per 4 MiB cost
#: nothing, and the few buffers in use stay in the L3 cache (1, 2, 8 and
#: 16 MiB were no faster in benchmarks/batch_bench.py).
DEFAULT_CHUNK_BYTES = 4 * 2**20

#: op -> the fastsig kernels' name
OPS = {"sigmoid": "sigmoid", "derivative": "sigmoid_derivative", "both": "sigmoid_and_derivative"}

_F64 = np.dtype(np.float64)


class BatchError(Exception):
    """A problem with the files or the arguments, told in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------
# Where an array lives
# --------------------------------------------------------------------------
_FORMATS = {".npy": "npy", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".he5": "hdf5", ".zarr": "zarr"}
_CONTAINER = re.compile(r"^(.+?\.(?:h5|hdf5|hdf|he5|zarr))/*(?::(.*))?$", re.IGNORECASE)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Location:
    """A file (npy, hdf5) or directory (zarr) and the key of an array in it."""

    def __init__(self, text: PathLike, default_format: str | None = None) -> None:
        text = os.fspath(text)
        if "://" in text:
            scheme, _, rest = text.partition("://")
            if scheme.lower() != "file":
                raise BatchError(f"{text}: only local files are supported (a path or a file:// URL)")
            text = rest
        match = _CONTAINER.match(text)
        path, key = (match.group(1), match.group(2)) if match else (text, None)
        self.text = text
        self.path = path
        self.key = (key.strip("/") or None) if key is not None else None
        suffix = os.path.splitext(path.rstrip("/"))[1].lower()
        self.format = _FORMATS.get(suffix) or default_format or _sniff(path)
        if self.key and self.format == "npy":
            raise BatchError(f"{text}: a .npy file holds one array; it takes no :/key")

    def __str__(self) -> str:
        return self.text


def _sniff(path: str) -> str:
    """The format of an existing source whose name does not say it."""
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zarray", ".zgroup")):
            return "zarr"
    elif os.path.isfile(path):
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\x93NUMPY"):
            return "npy"
        if head == _HDF5_SIGNATURE:
            return "hdf5"
    elif not os.path.exists(path):
        raise BatchError(f"{path}: no such file")
    raise BatchError(f"{path}: unknown format; name it .npy, .h5 (.hdf5) or .zarr")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


# --------------------------------------------------------------------------
# dtypes, and the computing of one block
# --------------------------------------------------------------------------
def _check_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """The dtype written for input of ``dtype``, or BatchError: float16/32/64
    stay as they are (byte order included), integers and bool give float64."""
    if dtype.hasobject:
        raise BatchError(f"{what} holds Python objects (a pickled array); fastsig never unpickles data")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise BatchError(f"{what} has the structured dtype {dtype}; fastsig takes plain numeric arrays")
    if dtype.kind == "f" and dtype.itemsize <= 8:
        return dtype
    if dtype.kind in "biu":
        return _F64
    raise BatchError(f"{what} has dtype {dtype}; fastsig takes float16, float32, float64, integer or bool")


_FUNCTIONS = {
    "sigmoid": sigmoid,
    "sigmoid_derivative": sigmoid_derivative,
    "sigmoid_and_derivative": sigmoid_and_derivative,
}


def _compute_block(name: str, x: np.ndarray, outs: Sequence[np.ndarray]) -> None:
    """Write fastsig's ``name`` of x into ``outs`` (one array, two for
    sigmoid_and_derivative), with the threads the caller set."""
    _FUNCTIONS[name](x, out=outs[0] if len(outs) == 1 else tuple(outs))


# --------------------------------------------------------------------------
# Blocks: C-order slabs of at most chunk_bytes
# --------------------------------------------------------------------------
def slabs(shape: tuple[int, ...], elements: int, unit: tuple[int, ...] | None = None) -> Iterator[tuple[slice, ...]]:
    """The blocks of an array of ``shape``, in C order, each at most
    ``elements`` large (at least one element).

    Every block is whole along the trailing axes, a run along one axis and a
    single index along the axes before it, so it is one contiguous range of
    a C-order array: one read, one write. The run is a multiple of
    ``unit`` (the storage chunks of HDF5 or zarr) along its axis where it
    can be, so that chunks are written whole.
    """
    if not shape:
        yield ()
        return
    if 0 in shape:
        return
    axis, trailing = len(shape) - 1, 1
    while axis > 0 and trailing * shape[axis] <= elements:
        trailing *= shape[axis]
        axis -= 1
    run = max(1, min(shape[axis], elements // trailing))
    if unit is not None and run < shape[axis] and unit[axis] <= run:
        run -= run % unit[axis]
    rest = tuple(slice(0, n) for n in shape[axis + 1:])
    for lead in itertools.product(*(range(n) for n in shape[:axis])):
        head = tuple(slice(i, i + 1) for i in lead)
        for start in range(0, shape[axis], run):
            yield head + (slice(start, min(start + run, shape[axis])),) + rest


def _flat_range(shape: tuple[int, ...], block: tuple[slice, ...]) -> tuple[int, int]:
    """(first element, element count) of a block of :func:`slabs` in a C-order array."""
    start, stride, count = 0, 1, 1
    for n, s in zip(reversed(shape), reversed(block)):
        start += s.start * stride
        stride *= n
        count *= s.stop - s.start
    return start, count


def _block_shape(block: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in block)


class _Slots:
    """Buffers reused block after block: one per (slot, role), grown on demand."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, str], np.ndarray] = {}

    def get(self, slot: int, role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        size = math.prod(shape)
        buf = self._buffers.get((slot, role))
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._buffers[(slot, role)] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


# --------------------------------------------------------------------------
# Raw file I/O
# --------------------------------------------------------------------------
def _pwrite_all(fd: int, buf: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(buf).reshape(-1).view(np.uint8))
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------
class _NpySource:
    """A .npy file read a block at a time; the header alone says what it holds."""

    format = "npy"
    key = None
    unit = None

    def __init__(self, location: Location, writable: bool = False) -> None:
        self.path = location.path
        self.fd = _open(self.path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            self._read_header()
        except BaseException:
            os.close(self.fd)
            raise

    def _read_header(self) -> None:
        fmt = np.lib.format
        with open(self.fd, "rb", closefd=False) as f:
            head = f.read(6)
            f.seek(0)
            if head[:1] == b"\x80":
                raise BatchError(f"{self.path} is a Python pickle, not a .npy file; fastsig never unpickles data")
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = fmt.read_array_header_2_0(f)
                else:  # (3, 0) is only written for structured dtypes with non-latin-1 names
                    raise ValueError(f"format version {version[0]}.{version[1]} is not supported")
            except Exception as e:  # ValueError, EOFError, tokenize.TokenError, ...: all mean corrupt
                detail = e if isinstance(e, ValueError) else "its header cannot be parsed"
                raise BatchError(f"{self.path} is not a valid .npy file: {detail}") from None
            self.offset = f.tell()
        self.shape, self.fortran = tuple(shape), bool(fortran)
        self.dtype = dtype
        self.out_dtype = _check_dtype(dtype, self.path)
        self.nbytes = math.prod(self.shape) * dtype.itemsize
        size = os.fstat(self.fd).st_size
        if size < self.offset + self.nbytes:
            raise BatchError(
                f"{self.path} is truncated: its header announces {self.nbytes} bytes of data, "
                f"the file holds {max(0, size - self.offset)}"
            )

    @property
    def storage_shape(self) -> tuple[int, ...]:
        return self.shape[::-1] if self.fortran else self.shape

    def read(self, slot: int, block: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
        """``block`` of the array of C-order ``shape`` this file's data is viewed as.

        A read-only map of just this block, prefaulted: no copy into a
        buffer, and the pages leave the process with the returned array.
        """
        start, count = _flat_range(shape, block)
        offset = self.offset + start * self.dtype.itemsize
        base = offset - offset % mmap.ALLOCATIONGRANULARITY
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapped = mmap.mmap(self.fd, offset - base + count * self.dtype.itemsize, flags=flags,
                           prot=mmap.PROT_READ, offset=base)
        return np.frombuffer(mapped, self.dtype, count, offset - base).reshape(_block_shape(block))

    def close(self) -> None:
        os.close(self.fd)


class _Hdf5Source:
    format = "hdf5"

    def __init__(self, location: Location) -> None:
        h5py = _import("h5py", "HDF5")
        _must_exist(location.path)
        try:
            self.file = h5py.File(location.path, "r")
        except OSError as e:
            raise BatchError(f"{location.path} is not a readable HDF5 file: {e}") from None
        try:
            self.key = location.key or _only_one(_hdf5_datasets(self.file), location)
            dset = self.file.get(self.key)
            if not isinstance(dset, h5py.Dataset):
                raise BatchError(f"{location.path} has no dataset {self.key!r}")
            self.dataset, self.path = dset, f"{location.path}:/{self.key}"
            self.shape, self.dtype = tuple(dset.shape), dset.dtype
            self.out_dtype = _check_dtype(self.dtype, self.path)
            self.unit = dset.chunks
            self.nbytes = math.prod(self.shape) * self.dtype.itemsize
            self.slots = _Slots()
        except BaseException:
            self.file.close()
            raise

    storage_shape = property(lambda self: self.shape)

    def read(self, slot: int, block: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
        buf = self.slots.get(slot, "in", _block_shape(block), self.dtype)
        if buf.size:
            self.dataset.read_direct(buf, source_sel=block or np.s_[()])
        return buf

    def creation_options(self) -> dict[str, Any]:
        d = self.dataset
        return dict(chunks=d.chunks, compression=d.compression, compression_opts=d.compression_opts,
                    shuffle=d.shuffle, fletcher32=d.fletcher32)

    def close(self) -> None:
        self.file.close()


class _ZarrSource:
    format = "zarr"

    def __init__(self, location: Location) -> None:
        zarr = _import("zarr", "zarr")
        _must_exist(location.path)
        try:
            node = zarr.open(store=location.path, mode="r")
            if location.key:
                node = zarr.open(store=location.path, mode="r", path=location.key)
        except Exception as e:  # zarr raises its own types for every kind of bad store
            raise BatchError(f"{location.text} is not a readable zarr array: {type(e).__name__}: {e}") from None
        self.key = location.key
        if isinstance(node, zarr.Group):
            self.key = _only_one([k for k, v in node.members(max_depth=None) if isinstance(v, zarr.Array)], location)
            node = node[self.key]
        self.array, self.path = node, location.text if not self.key else f"{location.path}:/{self.key}"
        self.shape, self.dtype = tuple(node.shape), np.dtype(node.dtype)
        self.out_dtype = _check_dtype(self.dtype, self.path)
        self.unit = node.shards or node.chunks
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize

    storage_shape = property(lambda self: self.shape)

    def read(self, slot: int, block: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
        return np.ascontiguousarray(self.array[block])

    def creation_options(self) -> dict[str, Any]:
        a = self.array
        return dict(chunks=a.chunks, shards=a.shards, compressors=a.compressors, zarr_format=a.metadata.zarr_format)

    def close(self) -> None:
        pass


def _open_source(location: Location, in_place: bool):
    if location.format == "npy":
        return _NpySource(location, writable=in_place)
    if in_place:
        raise BatchError("--in-place rewrites .npy files only")
    return (_Hdf5Source if location.format == "hdf5" else _ZarrSource)(location)


def _hdf5_datasets(group) -> list[str]:
    import h5py

    names: list[str] = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _only_one(keys: list[str], location: Location) -> str:
    if len(keys) != 1:
        listed = ", ".join(sorted(keys)[:5]) + (", ..." if len(keys) > 5 else "")
        raise BatchError(
            f"{location.path} holds {len(keys)} arrays ({listed or 'none'}); name one as {location.path}:/KEY"
        )
    return keys[0]


def _import(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise BatchError(f"{what} files need {module}: pip install 'fastsig[io]'") from None


def _must_exist(path: str) -> None:
    if not os.path.exists(path):
        raise BatchError(f"{path}: no such file")


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise BatchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BatchError(f"{path} is a directory, not a .npy file") from None


# --------------------------------------------------------------------------
# Destinations: a temporary beside the file, renamed over it when complete
# --------------------------------------------------------------------------
_TEMP = re.compile(r"^\.(?P<name>.+)\.fastsig-(?P<pid>\d+)-[0-9a-f]+\.tmp(-old)?$")


def _remove_stale_temporaries(path: str) -> None:
    """Remove what killed runs writing ``path`` left beside it (their process is gone)."""
    directory, name = os.path.split(path)
    for entry in os.listdir(directory or "."):
        m = _TEMP.match(entry)
        if m is None or m.group("name") != name or _alive(int(m.group("pid"))):
            continue
        _remove(os.path.join(directory, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


class _Output:
    """One destination file (npy, hdf5) or directory (zarr), and the arrays written to it."""

    def __init__(self, location: Location, keys: list[str | None]) -> None:
        self.location, self.format = location, location.format
        self.path = _real(location)
        self.keys = keys
        directory, name = os.path.split(self.path)
        if not os.path.isdir(directory):
            raise BatchError(f"{location.path}: the directory {directory} does not exist")
        self._check_replaceable()
        _remove_stale_temporaries(self.path)
        self.tmp = os.path.join(directory, f".{name}.fastsig-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        self.handle: Any = None

    def _check_replaceable(self) -> None:
        """Refuse to replace anything but a file or store holding just the arrays written now."""
        path = self.path
        if not os.path.lexists(path):
            return
        if self.format == "zarr":
            if not os.path.isdir(path):
                raise BatchError(f"{path} exists and is not a zarr store; not replacing it")
            zarr = _import("zarr", "zarr")
            try:
                node = zarr.open(store=path, mode="r")
                keys = [None] if isinstance(node, zarr.Array) else [
                    k for k, v in node.members(max_depth=None) if isinstance(v, zarr.Array)]
            except Exception:
                raise BatchError(f"{path} exists and is not a zarr store; not replacing it") from None
        elif os.path.isdir(path):
            raise BatchError(f"{path} is a directory")
        elif self.format == "hdf5":
            h5py = _import("h5py", "HDF5")
            try:
                with h5py.File(path, "r") as f:
                    keys = _hdf5_datasets(f)
            except OSError:
                raise BatchError(f"{path} exists and is not an HDF5 file; not replacing it") from None
        else:
            return
        others = set(keys) - set(self.keys)
        if others:
            raise BatchError(
                f"{path} also holds {', '.join(sorted(k or 'the root array' for k in others))}; fastsig apply replaces "
                "whole files, so it would be lost: write to a new file"
            )

    def commit(self, fsync: bool) -> None:
        self.close()
        if fsync:
            _fsync_tree(self.tmp)
        if self.format == "zarr" and os.path.isdir(self.path):
            # A directory cannot be renamed over a non-empty one: swap the two,
            # then delete the old store, now under the temporary name.
            if not _exchange(self.tmp, self.path):
                old = self.tmp + "-old"
                os.rename(self.path, old)
                os.rename(self.tmp, self.path)
                self.tmp = old
            _remove(self.tmp)
        else:
            os.replace(self.tmp, self.path)
        if fsync:
            _fsync_tree(os.path.dirname(self.path), recursive=False)

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if isinstance(handle, int):
            os.close(handle)
        elif handle is not None and hasattr(handle, "close"):
            handle.close()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
        _remove(self.tmp)


def _fsync_tree(path: str, recursive: bool = True) -> None:
    paths = [path]
    if recursive and os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            paths += [os.path.join(root, n) for n in dirs + files]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------
# Sinks: write blocks of one array
# --------------------------------------------------------------------------
class _NpySink:
    def __init__(self, output: _Output, shape: tuple[int, ...], dtype: np.dtype, fortran: bool) -> None:
        header = io.BytesIO()
        d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
        try:
            np.lib.format.write_array_header_1_0(header, d)
        except ValueError:  # a header over 64 KiB
            header = io.BytesIO()
            np.lib.format.write_array_header_2_0(header, d)
        self.offset, self.dtype, self.path = header.tell(), dtype, output.path
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        with _naming(self.path):
            output.handle = self.fd = os.open(output.tmp, flags, 0o666)
            _reserve(self.fd, self.offset + math.prod(shape) * dtype.itemsize)
            os.pwrite(self.fd, header.getvalue(), 0)

    def write(self, block: tuple[slice, ...], shape: tuple[int, ...], data: np.ndarray) -> None:
        start, _ = _flat_range(shape, block)
        with _naming(self.path):
            _pwrite_all(self.fd, data, self.offset + start * self.dtype.itemsize)


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """Name the destination in an OSError raised without a file name (pwrite's)."""
    try:
        yield
    except OSError as e:
        if not e.filename:
            e.filename = path
        raise


def _reserve(fd: int, size: int) -> None:
    """Allocate the whole file now, so that a full disk fails before any work."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", -1)):
            raise
        os.ftruncate(fd, size)  # a file system without fallocate
    except AttributeError:  # no posix_fallocate on this platform
        os.ftruncate(fd, size)


class _Hdf5Sink:
    def __init__(self, output: _Output, key: str, shape, dtype, options: dict[str, Any]) -> None:
        import h5py

        if output.handle is None:
            output.handle = h5py.File(output.tmp, "w")
        self.dataset = output.handle.create_dataset(key, shape=shape, dtype=dtype, **options)

    def write(self, block, shape, data: np.ndarray) -> None:
        if data.size:
            self.dataset.write_direct(np.ascontiguousarray(data), dest_sel=block or np.s_[()])


class _ZarrSink:
    def __init__(self, output: _Output, key: str | None, shape, dtype, options: dict[str, Any]) -> None:
        import zarr

        output.handle = output.tmp
        self.array = zarr.create_array(store=output.tmp, name=key, shape=shape, dtype=dtype, **options)

    @property
    def unit(self) -> tuple[int, ...]:
        return self.array.shards or self.array.chunks

    def write(self, block, shape, data: np.ndarray) -> None:
        self.array[block] = data


# --------------------------------------------------------------------------
# Workers: each block read, computed and written by one thread
# --------------------------------------------------------------------------
def _run_blocks(blocks: Iterator, task: Callable, workers: int, done: Callable) -> None:
    """``done(task(slot, block))`` for every block, ``workers`` at a time.

    Reads and writes are positional, so blocks need no order: each worker
    thread reads, computes and writes whole blocks, and the reading and
    writing of some overlap with the arithmetic of others (all of them
    release the GIL). A block in flight owns slot ``slot`` (its buffers)
    until its task returns. Errors are raised here once the tasks in flight
    have finished, so that nothing touches the files after this returns.
    """
    if workers == 1:  # in this thread: simplest, and signals land in the work
        for block in blocks:
            done(task(0, block))
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastsig-apply")
    free, pending = list(range(workers)), {}
    try:
        for block in blocks:
            if not free:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    free.append(pending.pop(future))
                    done(future.result())
            slot = free.pop()
            pending[pool.submit(task, slot, block)] = slot
        for future in list(pending):
            done(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _progress_bar(enabled: bool | None, total: int, description: str):
    """A tqdm bar on stderr (bytes, with throughput), or None: when disabled,
    when stderr is no terminal (``enabled=None``), or without tqdm."""
    if enabled is None:
        enabled = sys.stderr is not None and sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar then
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=description,
                file=sys.stderr)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit(143) so that temporaries are removed on the
    way out; only in the main thread, and only where nobody set a handler."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------
def apply(
    source: PathLike,
    destination: PathLike | Sequence[PathLike] | None = None,
    op: str = "sigmoid",
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool | None = None,
    threads: int | None = None,
    in_place: bool = False,
    fsync: bool = False,
) -> None:
    """Apply σ, σ′ or both to an array file of any size, a chunk at a time.

    Parameters
    ----------
    source : str or path
        ``X.npy``, ``X.h5[:/DATASET]`` or ``X.zarr[:/ARRAY]`` (or a
        ``file://`` URL); an unknown suffix is recognised by content.
    destination : str, path, or a pair of them
        Where the result goes, in the same form; a name without a known
        suffix gets the source's format. For ``op="both"`` a pair: σ first,
        then σ′. None with ``in_place=True``.
    op : {"sigmoid", "derivative", "both"}
        σ(x), σ′(x), or both from one pass over the input.
    chunk_bytes : int
        Bytes per block and buffer; each thread holds an input block and
        one output buffer (two for ``op="both"``).
    progress : bool or None
        Show a tqdm progress bar with throughput on stderr; None: only when
        stderr is a terminal. No bar without tqdm installed.
    threads : int, optional
        Threads (default: :func:`fastsig.get_num_threads`). Each reads,
        computes and writes whole chunks with the single-threaded kernel;
        for zarr destinations, one thread runs the parallel kernel.
    in_place : bool
        Overwrite a float ``.npy`` source chunk by chunk. Not atomic: a run
        killed half-way leaves the file part transformed.
    fsync : bool
        Flush the output to the disk before renaming it into place.

    Raises
    ------
    BatchError
        For a missing or unreadable source, an unsupported dtype, a corrupt,
        truncated or pickled ``.npy``, a destination that is the source or
        holds other arrays, a full disk: one line, and the destination is
        left as it was.
    """
    if op not in OPS:
        raise BatchError(f"op must be one of {', '.join(OPS)}, not {op!r}")
    if int(chunk_bytes) < 1:
        raise BatchError(f"the chunk size must be positive, got {chunk_bytes} bytes")
    if threads is not None and int(threads) < 1:
        raise BatchError(f"the number of threads must be >= 1, got {threads}")
    try:
        with _sigterm_raises():
            _apply(source, destination, op, int(chunk_bytes), progress, in_place, fsync,
                   int(threads or get_num_threads()))
    except OSError as e:
        raise BatchError(_describe(e)) from None


def _describe(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{where}{e.strerror or e}: the destination was left as it was"
    return f"{where}{e.strerror or e}"


def _destinations(destination, op: str, in_place: bool) -> list[str]:
    if in_place:
        if destination is not None:
            raise BatchError("--in-place writes over the input: give no destination")
        if op == "both":
            raise BatchError("--in-place cannot hold two outputs: use --op sigmoid or --op derivative")
        return []
    if destination is None:
        raise BatchError("no destination given")
    outs = [destination] if isinstance(destination, (str, os.PathLike)) else list(destination)
    wanted = 2 if op == "both" else 1
    if len(outs) != wanted:
        if op == "both":
            raise BatchError("op both writes two outputs: give two destinations, σ first, then σ′")
        raise BatchError(f"op {op} writes one output: give one destination")
    return [os.fspath(o) for o in outs]


def _apply(source, destination, op, chunk_bytes, progress, in_place, fsync, threads) -> None:
    name = OPS[op]
    src_location = Location(source)
    outs = _destinations(destination, op, in_place)
    dst_locations = [Location(d, default_format=src_location.format) for d in outs]
    src = _open_source(src_location, in_place)
    try:
        if in_place and src.out_dtype != src.dtype:
            raise BatchError(f"{src.path} has dtype {src.dtype}: only float arrays can be overwritten with σ")
        for d in dst_locations:
            if _same_file(d.path, src_location.path):
                raise BatchError(f"{d} is the input file: write to another file, or use --in-place (.npy)")
        if len(dst_locations) == 2 and (
            _same_file(dst_locations[0].path, dst_locations[1].path)
            and (dst_locations[0].format == "npy" or dst_locations[0].key == dst_locations[1].key)
        ):
            raise BatchError("the σ and σ′ destinations are the same")
        _run(name, src, dst_locations, chunk_bytes, progress, in_place, fsync, threads)
    finally:
        src.close()


def _run(name, src, dst_locations, chunk_bytes, progress, in_place, fsync, threads) -> None:
    # Outputs: one per file or store, a sink per array in it.
    keys = [_output_key(d, src) for d in dst_locations]
    by_path: dict[str, tuple[Location, list]] = {}
    for d, key in zip(dst_locations, keys):
        by_path.setdefault(_real(d), (d, []))[1].append(key)
    outputs = {path: _Output(d, path_keys) for path, (d, path_keys) in by_path.items()}
    flat = src.format == "npy" and all(d.format == "npy" for d in dst_locations)
    nout = 2 if name == "sigmoid_and_derivative" else 1
    itemsize = max(src.dtype.itemsize, src.out_dtype.itemsize)
    elements = max(1, chunk_bytes // itemsize)
    sinks: list[Any] = []
    try:
        for d, key in zip(dst_locations, keys):
            sinks.append(_make_sink(outputs[_real(d)], d, key, src))
        if flat or in_place:
            # Elementwise: the data of npy to npy is streamed in storage order,
            # C or Fortran alike, and the output keeps the source's order.
            shape = (math.prod(src.shape),)
            blocks = slabs(shape, elements)
            transpose = False
        else:
            shape = src.storage_shape
            transpose = getattr(src, "fortran", False)
            unit = src.unit or next((s.unit for s in sinks if hasattr(s, "unit")), None)
            blocks = slabs(shape, elements, None if transpose else unit)
        if in_place:
            sinks = [_InPlace(src)]
        # Concurrent writes to one zarr chunk would race: one worker there.
        workers = 1 if any(isinstance(s, _ZarrSink) for s in sinks) else threads
        _stream(name, src, sinks, nout, shape, blocks, transpose, progress, threads, workers)
        for output in outputs.values():
            output.commit(fsync)
        if in_place and fsync:
            os.fsync(src.fd)
    except BaseException:
        for output in outputs.values():
            output.discard()
        raise


def _real(location: Location) -> str:
    return os.path.realpath(location.path.rstrip("/") or location.path)


def _output_key(location: Location, src) -> str | None:
    """The array's key in a destination: as given, else the source's, else
    ``data`` in HDF5 and the root array in zarr."""
    if location.format == "npy":
        return None
    key = location.key or src.key
    return key or ("data" if location.format == "hdf5" else None)


class _InPlace:
    """Blocks written back over a .npy source, where they were read."""

    def __init__(self, src: _NpySource) -> None:
        self.src = src

    def write(self, block, shape, data: np.ndarray) -> None:
        start, _ = _flat_range(shape, block)
        with _naming(self.src.path):
            _pwrite_all(self.src.fd, data, self.src.offset + start * self.src.dtype.itemsize)


def _make_sink(output: _Output, location: Location, key, src):
    shape, dtype = src.shape, src.out_dtype
    if location.format == "npy":
        return _NpySink(output, shape, dtype, getattr(src, "fortran", False))
    same = src.format == location.format
    if location.format == "hdf5":
        _import("h5py", "HDF5")
        options = src.creation_options() if same else {}
        return _Hdf5Sink(output, key, shape, dtype, options)
    _import("zarr", "zarr")
    options = src.creation_options() if same else {}
    if not same and src.unit is not None:
        options["chunks"] = src.unit
    return _ZarrSink(output, key, shape, dtype, options)


def _stream(name, src, sinks, nout, shape, blocks, transpose, progress, threads, workers) -> None:
    slots = _Slots()
    out_dtype = src.out_dtype
    kernel_threads = max(1, threads // workers)

    def task(slot: int, block: tuple[slice, ...]) -> int:
        x = src.read(slot, block, shape)
        # Never in place (out=x): the serial kernel's vectorized loop does not
        # run on aliased arrays, and its scalar fallback is three times slower.
        results = tuple(slots.get(slot, f"out{k}", x.shape, out_dtype) for k in range(nout))
        with num_threads(kernel_threads):
            _compute_block(name, x, results)
        for sink, data in zip(sinks, results):
            if transpose and not isinstance(sink, _NpySink):
                # A Fortran-order .npy source is read in its storage order, so
                # its blocks are transposed; .npy outputs keep that order.
                sink.write(block[::-1], None, data.T)
            else:
                sink.write(block, shape, data)
        return x.nbytes

    bar = _progress_bar(progress, src.nbytes, f"fastsig {name.replace('_', ' ')}")
    try:
        _run_blocks(blocks, task, workers, bar.update if bar is not None else lambda n: None)
    finally:
        if bar is not None:
            bar.close()
