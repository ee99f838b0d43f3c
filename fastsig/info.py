"""What ``fastsig info`` prints: versions, CPU, threads and CUDA availability."""

from __future__ import annotations

import platform


def info_report() -> str:
    import llvmlite.binding as llvm
    import numba
    import numpy as np

    import fastsig

    from . import _kernels, _math

    try:
        from .cuda import cuda_status
    except ImportError as exc:  # the CUDA module itself is optional
        cuda = f"not available ({exc})"
    else:
        cuda = cuda_status()
    return "\n".join(
        [
            f"fastsig  {fastsig.__version__}",
            f"python   {platform.python_version()} ({platform.machine()})",
            f"numpy    {np.__version__}",
            f"numba    {numba.__version__} (llvmlite {llvm.llvm_version_info if hasattr(llvm, 'llvm_version_info') else ''})",
            f"cpu      {llvm.get_host_cpu_name()} ({_vector_code()})",
            f"threads  {fastsig.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS} "
            f"(cap with fastsig.set_num_threads or FASTSIG_NUM_THREADS); "
            "parallel from {:,} (float64) / {:,} (float32) elements".format(
                *(_kernels.parallel_min_size("sigmoid", np.dtype(t)) for t in ("float64", "float32")))
            + (", on fastsig's worker threads" if _kernels._USE_WORKERS else ", through Numba's threading layer"),
            f"cuda     {cuda}",
        ]
    )


def _vector_code() -> str:
    """What the CPU kernels are compiled to on this CPU."""
    from . import _math

    if _math.cpu_has_avx512():
        return "AVX-512: 512-bit vectors, reciprocals by vrcp14 and a Newton step"
    if _math.cpu_has_avx2():
        return "AVX2: 256-bit vectors, table lookups by vpermps, divisions"
    return "no AVX2: table lookups by extracts, divisions"
