"""fastsig.batch and ``fastsig apply``: results, formats, safety, memory, errors.

The subprocess tests run the real command and kill it, starve it of disk
space or measure its peak memory; they pass ``--threads 1`` so that the
child loads only the serial kernels the in-process tests compiled.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import pty
import resource
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

import fastsig
from fastsig import batch
from fastsig.cli import main
from fastsig.peak_memory import apply_peak_rss_mib

try:  # the io extra; the .npy tests run without it
    import h5py
    import zarr
except ImportError:
    h5py = zarr = None
needs_io = pytest.mark.skipif(zarr is None, reason="needs h5py and zarr (fastsig[io])")

REPO = Path(__file__).resolve().parents[1]


# The expected values: fastsig on the whole array in memory, with the serial
# kernel that the batch runs too (so that the tests compile nothing more).
def sigmoid(x):
    with fastsig.num_threads(1):
        return fastsig.sigmoid(x)


def derivative(x):
    with fastsig.num_threads(1):
        return fastsig.sigmoid_derivative(x)


def sigmoid_and_derivative(x):
    with fastsig.num_threads(1):
        return fastsig.sigmoid_and_derivative(x)


FUNCTIONS = {"sigmoid": sigmoid, "derivative": derivative}
# A chunk of 1000 bytes: many blocks, and a short last one, for small arrays.
SMALL_CHUNK = 1000


def _data(shape, dtype, seed=0, order="C") -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape) * 12
    if np.dtype(dtype).kind == "f" and x.size >= 4:
        x.flat[:4] = [0.0, np.inf, -np.inf, np.nan]
    return np.asarray(x.astype(dtype), order=order)


def _expected_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".fastsig-" in p.name)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", ">f4", "int16", "bool"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_to_npy_matches_fastsig(tmp_path, dtype, order):
    x = _data((17, 29, 3), dtype, order=order)
    np.save(tmp_path / "x.npy", x)
    for op, f in FUNCTIONS.items():
        batch.apply(tmp_path / "x.npy", tmp_path / f"{op}.npy", op, chunk_bytes=SMALL_CHUNK)
        y = np.load(tmp_path / f"{op}.npy", allow_pickle=False)
        assert y.dtype == _expected_dtype(dtype) and y.shape == x.shape
        assert y.flags.f_contiguous == (order == "F")
        np.testing.assert_array_equal(y, f(x))
    batch.apply(tmp_path / "x.npy", (tmp_path / "s.npy", tmp_path / "ds.npy"), "both", chunk_bytes=SMALL_CHUNK)
    s, ds = sigmoid_and_derivative(x)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), s)
    np.testing.assert_array_equal(np.load(tmp_path / "ds.npy"), ds)
    assert _temporaries(tmp_path) == []


@needs_io
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (5000,)])
def test_odd_shapes(tmp_path, shape):
    x = _data(shape, np.float32)
    np.save(tmp_path / "x.npy", x)
    for out in ("y.npy", "y.h5", "y.zarr"):
        batch.apply(tmp_path / "x.npy", tmp_path / out, chunk_bytes=SMALL_CHUNK)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), sigmoid(x))
    with h5py.File(tmp_path / "y.h5", "r") as f:
        np.testing.assert_array_equal(f["data"][()], sigmoid(x))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "y.zarr", mode="r")[...], sigmoid(x))


@pytest.mark.parametrize("elements", [1, 7, 100, 10_000])
@pytest.mark.parametrize("shape", [(10,), (6, 7), (4, 5, 6), (2, 3, 4, 5)])
def test_slabs_tile_the_array_in_contiguous_blocks(shape, elements):
    seen = np.zeros(shape, int)
    for block in batch.slabs(shape, elements, unit=(2,) * len(shape)):
        seen[block] += 1
        sizes = [s.stop - s.start for s in block]
        assert 1 <= np.prod(sizes) <= max(elements, 1)
        # contiguous in C order: one run axis, whole axes after it, single indices before
        run = next((i for i, n in enumerate(sizes) if n > 1), len(sizes) - 1)
        assert all(n == 1 for n in sizes[:run])
        assert all(s == slice(0, n) for s, n in zip(block[run + 1:], shape[run + 1:]))
    assert (seen == 1).all()


def test_slabs_align_with_storage_chunks():
    blocks = list(batch.slabs((100, 10), 350, unit=(8, 10)))
    assert {b[0].stop - b[0].start for b in blocks[:-1]} == {32}


@needs_io
def test_hdf5_and_zarr_round_trips(tmp_path):
    x = _data((300, 70), np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("group/x", data=x, chunks=(16, 70), compression="gzip")
    # HDF5 -> HDF5 keeps the key, chunks and compression; both outputs in one file
    batch.apply(f"{tmp_path}/x.h5", (f"{tmp_path}/y.h5:/s", f"{tmp_path}/y.h5:/ds"), "both", chunk_bytes=20_000)
    with h5py.File(tmp_path / "y.h5", "r") as f:
        assert sorted(f) == ["ds", "s"] and f["s"].chunks == (16, 70) and f["s"].compression == "gzip"
        np.testing.assert_array_equal(f["s"][()], sigmoid(x))
        np.testing.assert_array_equal(f["ds"][()], derivative(x))
    # HDF5 -> zarr (chunks follow the HDF5 chunks) -> npy -> zarr at a key
    batch.apply(f"{tmp_path}/x.h5:/group/x", tmp_path / "y.zarr", "derivative", chunk_bytes=20_000)
    z = zarr.open_array(tmp_path / "y.zarr", mode="r", path="group/x")
    assert z.chunks == (16, 70) and z.dtype == np.float32
    np.testing.assert_array_equal(z[...], derivative(x))
    batch.apply(f"file://{tmp_path}/y.zarr", tmp_path / "back.npy", chunk_bytes=SMALL_CHUNK)
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), sigmoid(z[...]))
    batch.apply(tmp_path / "back.npy", f"{tmp_path}/z.zarr:/a/b", chunk_bytes=SMALL_CHUNK)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "z.zarr", mode="r", path="a/b")[...],
                                  sigmoid(np.load(tmp_path / "back.npy")))
    # a destination without a known suffix gets the source's format
    batch.apply(tmp_path / "back.npy", tmp_path / "plain", chunk_bytes=SMALL_CHUNK)
    assert np.load(tmp_path / "plain").shape == x.shape
    assert _temporaries(tmp_path) == []


@needs_io
@pytest.mark.parametrize("order", ["C", "F"])
def test_both_to_two_formats_at_once(tmp_path, order):
    x = _data((23, 41, 3), np.float64, order=order)
    np.save(tmp_path / "x.npy", x)
    batch.apply(tmp_path / "x.npy", (tmp_path / "s.npy", f"{tmp_path}/ds.h5:/d"), "both", chunk_bytes=SMALL_CHUNK)
    s = np.load(tmp_path / "s.npy")
    assert s.flags.f_contiguous == (order == "F")
    np.testing.assert_array_equal(s, sigmoid(x))
    with h5py.File(tmp_path / "ds.h5", "r") as f:
        np.testing.assert_array_equal(f["d"][()], derivative(x))


@needs_io
def test_existing_zarr_store_is_replaced_whole(tmp_path):
    x = _data((50, 40), np.float64)
    zarr.create_array(store=tmp_path / "x.zarr", data=x, chunks=(10, 40))
    zarr.create_array(store=tmp_path / "y.zarr", data=np.zeros(3))
    batch.apply(tmp_path / "x.zarr", tmp_path / "y.zarr", chunk_bytes=SMALL_CHUNK, fsync=True)
    y = zarr.open_array(tmp_path / "y.zarr", mode="r")
    assert y.shape == x.shape and y.chunks == (10, 40)
    np.testing.assert_array_equal(y[...], sigmoid(x))
    assert _temporaries(tmp_path) == []


def test_in_place(tmp_path):
    x = _data((40_000,), np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["apply", str(tmp_path / "x.npy"), "--in-place", "--chunk-mb", "0.01", "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), sigmoid(x))
    x16 = _data((999,), np.float16)
    np.save(tmp_path / "h.npy", x16)
    batch.apply(tmp_path / "h.npy", None, "derivative", in_place=True, chunk_bytes=SMALL_CHUNK)
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"), derivative(x16))


def test_worker_threads(tmp_path):
    # blocks of 131,072 elements shared among the default, one and three threads
    x = _data((300_000,), np.float32)
    np.save(tmp_path / "x.npy", x)
    for threads in (None, 1, 3):
        batch.apply(tmp_path / "x.npy", tmp_path / "y.npy", chunk_bytes=2**19, threads=threads, fsync=True)
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), sigmoid(x))


# --------------------------------------------------------------------------
# Progress bar
# --------------------------------------------------------------------------
def test_progress_bar_shows_throughput(tmp_path, capsys):
    pytest.importorskip("tqdm")
    np.save(tmp_path / "x.npy", _data((5000,), np.float32))
    batch.apply(tmp_path / "x.npy", tmp_path / "y.npy", progress=True, chunk_bytes=SMALL_CHUNK)
    assert "B/s" in capsys.readouterr().err


def test_no_progress_bar_off_a_terminal_or_without_tqdm(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "x.npy", _data((5000,), np.float32))
    batch.apply(tmp_path / "x.npy", tmp_path / "y.npy", chunk_bytes=SMALL_CHUNK)  # stderr is no terminal here
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    batch.apply(tmp_path / "x.npy", tmp_path / "z.npy", progress=True, chunk_bytes=SMALL_CHUNK)
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), np.load(tmp_path / "y.npy"))
    assert capsys.readouterr().err == ""


def _run_in_terminal(args: list[str]) -> tuple[int, str]:
    """Run ``fastsig`` with stdout and stderr on an 80-column pseudo-terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "fastsig", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=_env())
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            data = os.read(leader, 65536) if ready else b""
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            break
        output += data
    os.close(leader)
    return proc.wait(timeout=60), output.decode(errors="replace")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal sizes as on Linux")
def test_cli_progress_on_a_terminal_and_quiet(tmp_path):
    pytest.importorskip("tqdm")
    np.save(tmp_path / "x.npy", _data((20_000,), np.float32))
    args = ["apply", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--chunk-mb", "0.01", "--threads", "1"]
    code, shown = _run_in_terminal(args)
    assert code == 0 and "B/s" in shown and "100%" in shown
    code, shown = _run_in_terminal(args + ["--quiet"])
    assert code == 0 and shown.strip() == ""


# --------------------------------------------------------------------------
# Bad input: one line on stderr, a non-zero status, nothing lost
# --------------------------------------------------------------------------
def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (the command's arguments after ``apply``, a phrase of the message)."""
    good = tmp_path / "good.npy"
    np.save(good, _data((1000,), np.float32))
    np.save(tmp_path / "objects.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    with open(tmp_path / "pickle.npy", "wb") as f:
        pickle.dump(np.arange(3), f)
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "complex.npy", np.ones(3, complex))
    np.save(tmp_path / "records.npy", np.zeros(3, [("a", "f4"), ("b", "i4")]))
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (3,)")
    (tmp_path / "garbage.npy").write_bytes(b"not an array at all")
    (tmp_path / "empty.npy").write_bytes(b"")
    truncated = good.read_bytes()[:2000]
    (tmp_path / "truncated.npy").write_bytes(truncated)
    ints = tmp_path / "ints.npy"
    np.save(ints, np.arange(10))
    out = str(tmp_path / "out.npy")
    cases = {
        "missing": (["nowhere.npy", out], "no such file"),
        "pickled array": ([str(tmp_path / "objects.npy"), out], "pickled"),
        "pickle file": ([str(tmp_path / "pickle.npy"), out], "pickle"),
        "strings": ([str(tmp_path / "strings.npy"), out], "<U1"),
        "complex": ([str(tmp_path / "complex.npy"), out], "complex128"),
        "structured": ([str(tmp_path / "records.npy"), out], "structured"),
        "corrupt header": ([str(tmp_path / "corrupt.npy"), out], "not a valid .npy"),
        "garbage": ([str(tmp_path / "garbage.npy"), out], "not a valid .npy"),
        "empty file": ([str(tmp_path / "empty.npy"), out], "not a valid .npy"),
        "truncated": ([str(tmp_path / "truncated.npy"), out], "truncated"),
        "own input": ([str(good), str(good)], "is the input"),
        "no directory": ([str(good), str(tmp_path / "no" / "out.npy")], "does not exist"),
        "one output for both": ([str(good), out, "--op", "both"], "two destinations"),
        "same two outputs": ([str(good), out, out, "--op", "both"], "same"),
        "in place with output": ([str(good), out, "--in-place"], "no destination"),
        "in place ints": ([str(ints), "--in-place"], "only float"),
        "remote": ([str(good), "s3://bucket/out.npy"], "only local files"),
    }
    if h5py is not None:
        (tmp_path / "not.h5").write_bytes(b"plain text")
        with h5py.File(tmp_path / "two.h5", "w") as f:
            f["a"], f["b"] = np.ones(3), np.ones(3)
        with h5py.File(tmp_path / "other.h5", "w") as f:
            f["keep"] = np.ones(3)
        cases.update({
            "not hdf5": ([str(tmp_path / "not.h5"), out], "not a readable HDF5"),
            "ambiguous hdf5": ([str(tmp_path / "two.h5"), out], "name one"),
            "missing dataset": ([f"{tmp_path}/two.h5:/c", out], "no dataset"),
            "other data in destination": ([str(good), str(tmp_path / "other.h5")], "also holds keep"),
            "in place hdf5": ([str(tmp_path / "two.h5") + ":/a", "--in-place"], ".npy files only"),
        })
    return cases


def test_bad_input_one_line_nonzero_nothing_lost(tmp_path, capsys):
    cases = _bad_inputs(tmp_path)
    out = tmp_path / "out.npy"
    np.save(out, np.arange(5.0))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for name, (args, phrase) in cases.items():
        code = main(["apply", *args, "--quiet"])
        err = capsys.readouterr().err
        assert code != 0, name
        assert err.startswith("fastsig apply: ") and err.count("\n") == 1, (name, err)
        assert phrase in err, (name, err)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # no input, destination or anything else changed, no temporary left


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["apply", "x.npy", "y.npy", "--chunk-mb", "0"])
    assert exit_info.value.code == 2 and "positive" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Killed half-way, out of disk space
# --------------------------------------------------------------------------
# The command, slowed down to 20 ms a block so that it can be caught half-way.
SLOW = """
import signal, sys, time
# A shell that starts a job in the background (make test under nohup or CI)
# hands it SIGINT ignored, and Python keeps it so: restore the default here.
signal.signal(signal.SIGINT, signal.default_int_handler)
import fastsig.batch as batch
compute = batch._compute_block
def slow(*args):
    time.sleep(0.02)
    compute(*args)
batch._compute_block = slow
from fastsig.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start_slow(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW, *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_temporary(directory: Path, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [p for p in directory.iterdir() if ".fastsig-" in p.name and p.stat().st_size > 1 << 20]
        if found:
            return found[0].name
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    raise AssertionError("no temporary appeared")


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_killed_half_way_leaves_the_destination(tmp_path, signum, status):
    x = _data((2**20,), np.float32)  # 4 MiB: 64 blocks of 64 KiB, 20 ms each
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(7.0))
    before = (tmp_path / "y.npy").read_bytes()
    args = ["apply", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--chunk-mb", "0.0625", "--threads", "1"]
    proc = _start_slow(args)
    with proc.stderr:
        temporary = _wait_for_temporary(tmp_path, proc)
        time.sleep(0.2)  # well into the run: about a sixth of the blocks are written
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == status
    assert (tmp_path / "y.npy").read_bytes() == before
    assert _temporaries(tmp_path) == ([] if signum != signal.SIGKILL else [temporary])
    # a clean re-run removes what the killed one left and completes
    assert subprocess.run([sys.executable, "-m", "fastsig", *args], env=_env()).returncode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), sigmoid(x))
    assert _temporaries(tmp_path) == []


def test_temporaries_of_live_runs_are_kept(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(3))
    live = tmp_path / f".y.npy.fastsig-{os.getpid()}-00000000.tmp"  # this process: alive
    live.write_bytes(b"")
    batch.apply(tmp_path / "x.npy", tmp_path / "y.npy")
    assert live.exists()


def _limit_file_size(limit: int):
    def limit_in_child() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead

    return limit_in_child


# Without the up-front allocation, so that the disk "fills up" half-way.
NO_RESERVE = """
import sys
import fastsig.batch as batch
batch._reserve = lambda fd, size: None
from fastsig.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("half_way", [False, True], ids=["reserved", "half-way"])
def test_full_disk(tmp_path, half_way):
    """Writes fail past 1 MiB (RLIMIT_FSIZE): as a full disk, an OS write error."""
    np.save(tmp_path / "x.npy", _data((2**20,), np.float32))
    np.save(tmp_path / "y.npy", np.arange(7.0))
    before = (tmp_path / "y.npy").read_bytes()
    command = ["-c", NO_RESERVE] if half_way else ["-m", "fastsig"]
    proc = subprocess.run(
        [sys.executable, *command, "apply", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
         "--threads", "1", "--chunk-mb", "0.25"],
        env=_env(), capture_output=True, text=True, preexec_fn=_limit_file_size(2**20),
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("fastsig apply: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "File too large" in proc.stderr and "y.npy" in proc.stderr
    assert (tmp_path / "y.npy").read_bytes() == before
    assert _temporaries(tmp_path) == []


# --------------------------------------------------------------------------
# Constant memory
# --------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM in /proc")
def test_peak_memory_does_not_grow_with_the_file(tmp_path):
    chunk = 2**20
    small, large = tmp_path / "small.npy", tmp_path / "large.npy"
    np.save(small, _data((chunk // 4,), np.float32))  # one chunk
    mm = np.lib.format.open_memmap(large, mode="w+", dtype=np.float32, shape=(64 * chunk // 4,))
    for i in range(0, mm.size, chunk // 4):  # 64 chunks, written without holding them
        mm[i:i + chunk // 4] = i
    del mm
    common = ["--op", "both", "--chunk-mb", "1", "--threads", "2", "--quiet"]
    rss_small = apply_peak_rss_mib([str(small), str(tmp_path / "s1.npy"), str(tmp_path / "d1.npy"), *common])
    rss_large = apply_peak_rss_mib([str(large), str(tmp_path / "s2.npy"), str(tmp_path / "d2.npy"), *common])
    print(f"peak RSS: {rss_small:.0f} MiB for 1 MiB, {rss_large:.0f} MiB for 64 MiB (chunks of 1 MiB, --op both)")
    # Two threads, each with a mapped input block and two output buffers of
    # 1 MiB: 6 MiB at most above what a one-chunk file takes, for 64 MiB read
    # and 128 MiB written.
    assert rss_large - rss_small < 12
    np.testing.assert_array_equal(np.load(tmp_path / "s2.npy", mmap_mode="r")[::99_999],
                                  sigmoid(np.load(large, mmap_mode="r")[::99_999]))


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------
@pytest.mark.parametrize("text, path, fmt, key", [
    ("a.npy", "a.npy", "npy", None),
    ("d/a.h5:/g/x", "d/a.h5", "hdf5", "g/x"),
    ("a.HDF5:x", "a.HDF5", "hdf5", "x"),
    ("s.zarr", "s.zarr", "zarr", None),
    ("s.zarr/:/a/b/", "s.zarr", "zarr", "a/b"),
    ("file:///tmp/s.zarr:/a", "/tmp/s.zarr", "zarr", "a"),
    ("dir.zarr/inside.npy", "dir.zarr/inside.npy", "npy", None),
])
def test_location_parsing(text, path, fmt, key):
    location = batch.Location(text)
    assert (location.path, location.format, location.key) == (path, fmt, key)


def test_location_format_by_content(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(2))
    os.rename(tmp_path / "x.npy", tmp_path / "x.data")
    assert batch.Location(tmp_path / "x.data").format == "npy"
    assert batch.Location(tmp_path / "new.out", default_format="hdf5").format == "hdf5"
    with pytest.raises(batch.BatchError, match="unknown format"):
        (tmp_path / "x.txt").write_text("hello")
        batch.Location(tmp_path / "x.txt")


def test_api_argument_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(2))
    for kwargs, phrase in [({"op": "tanh"}, "op must be"), ({"chunk_bytes": 0}, "positive"),
                           ({"threads": 0}, ">= 1")]:
        with pytest.raises(batch.BatchError, match=phrase):
            batch.apply(tmp_path / "x.npy", tmp_path / "y.npy", **kwargs)
    assert list(tmp_path.glob("y*")) == []
