"""Smoke tests of `fastsig bench` and `fastsig plot`, and of the comparison table they share."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fastsig import bench, comparisons
from fastsig.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_comparison_table_is_import_light():
    # the peers are imported on demand only (numba itself imports the scipy package, not scipy.special)
    code = "import sys, fastsig.comparisons; print(any(m in sys.modules for m in ('torch', 'scipy.special', 'numexpr')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("op", comparisons.OPERATIONS)
def test_comparison_table_wiring(op):
    import fastsig

    c = comparisons.COMPARISONS[op]
    assert c.fastsig is getattr(fastsig, op)
    assert c.in_place == op.endswith("_")
    # the in-place baselines compute what the out-of-place ones do, on copies
    inputs = c.inputs(200, "float64")
    saved = [a.copy() for a in inputs]
    got = c.call("baseline", inputs)
    for a, b in zip(inputs, saved):
        np.testing.assert_array_equal(a, b)
    expected = getattr(fastsig.baseline, op.rstrip("_"))(*inputs)
    got, expected = (v if isinstance(v, tuple) else (v,) for v in (got, expected))
    assert len(got) == len(expected) == len(c.outputs)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-300)


def test_fastsig_agrees_with_the_baseline():
    # sigmoid only: the other ops' kernels are compiled (and checked) by test_api
    for op in ("sigmoid", "sigmoid_"):
        c = comparisons.COMPARISONS[op]
        inputs = c.inputs(200, "float32")
        np.testing.assert_allclose(c.call("fastsig", inputs), c.call("baseline", inputs), rtol=1e-6)


def test_reference_and_ulp_errors():
    x = np.array([-20.0, -1.0, 0.0, 2.5, 20.0])
    exact = bench.reference("sigmoid", (x,), np.dtype(np.float64))
    assert bench.ulp_errors(exact.astype(np.float64), exact, np.float64).max() <= 0.5
    one_ulp_off = np.nextafter(exact.astype(np.float64), 2.0)
    assert 0.5 <= bench.ulp_errors(one_ulp_off, exact, np.float64).max() <= 1.5


def test_sizes():
    assert [bench.size_label(n) for n in (10, 100_000, 1234)] == ["1e1", "1e5", "1234"]
    assert bench.parse_size("1e5") == bench.parse_size("100_000") == 100_000
    with pytest.raises(ValueError):
        bench.parse_size("1.5")


def test_fallback_progress_bar(capsys):
    bar = bench._Progress(3, "fastsig bench")
    bar.set_postfix_str("sigmoid float32 1e3")
    bar.update()
    bar.close()
    assert "1/3" in capsys.readouterr().err


def test_bench_cli_small_run(capsys):
    assert main(["bench", "--ops", "sigmoid", "sigmoid_", "--dtypes", "float32", "--sizes", "1e2",
                 "--no-peers", "--repeats", "1", "--min-time", "0.0005", "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("fastsig ") and lines[1].startswith("threads: fastsig")
    header = next(line for line in lines if line.startswith("operation"))
    assert "vs baseline" in header and "max ulp" in header
    row = next(line for line in lines if line.startswith("sigmoid ") and "1e2" in line)
    assert row.split()[1] == "float32"
    assert any(line.startswith("sigmoid_ ") for line in lines)


def test_info_cli_names_versions_cpu_and_threads(capsys):
    from fastsig import _math

    assert main(["info"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {"fastsig", "python", "numpy", "numba", "cpu", "threads", "cuda"} <= set(lines)
    assert ("vrcp14" in lines["cpu"]) == _math.cpu_has_avx512()


def test_bench_rows_with_a_peer():
    pytest.importorskip("scipy")
    rows = bench.run(["sigmoid"], ["float64"], [100], ["scipy"], min_time=1e-4, repeats=1, progress=False)
    (row,) = rows
    assert set(row.ns) == {"fastsig", "baseline", "scipy", bench.COPY}
    assert row.speedup("scipy") > 0 and row.ulp["fastsig"] <= 1


def test_bench_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown dtype"):
        bench.run(dtypes=["int8"], progress=False)
    with pytest.raises(SystemExit):
        main(["bench", "--ops", "tanh"])


def test_plot_cli_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "sigmoid.png"
    assert main(["plot", str(path)]) == 0
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_throughput_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        bench.Row("sigmoid", dtype, size, {"fastsig": size * 1.0, "baseline": size * 3.0, bench.COPY: size * 0.5})
        for dtype in ("float32", "float64")
        for size in (10, 1000, 100_000)
    ]
    path = tmp_path / "throughput.png"
    bench.plot(rows, str(path))
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    from fastsig.plot import require_matplotlib

    with pytest.raises(ImportError, match=r"fastsig\[plot\]"):
        require_matplotlib()
    assert main(["plot", str(tmp_path / "x.png")]) == 1
    assert "fastsig[plot]" in capsys.readouterr().err
    # bench --plot fails before timing anything
    assert main(["bench", "--sizes", "10", "--no-peers", "--plot", str(tmp_path / "t.png"), "--no-progress"]) == 1


def test_progress_falls_back_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert isinstance(bench.progress_bar(2), bench._Progress)
    assert isinstance(bench.progress_bar(2, enabled=False), bench._NoProgress)
