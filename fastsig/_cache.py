"""Where fastsig's compiled kernels are cached on disk, and when they are stale.

Numba's own cache locators key a cached kernel on the mtime of the file that
defines it, so a change to a helper in another file (an upgrade of
``_math.py``) would serve stale machine code, and they raise at import when
no cache directory is writable. This locator claims fastsig's files only:

* the cache lives in a per-user directory named after a hash of *every*
  fastsig source file and the package's import name, so any change anywhere
  in the package is a new cache, and a renamed copy of it (vendored, say)
  never reads kernels whose pickled environment names the other package;
* if no such directory is writable (read-only home, read-only site-packages),
  caching is simply off and kernels compile in memory.

Directory, in order: ``$FASTSIG_CACHE_DIR``, ``$NUMBA_CACHE_DIR/fastsig``,
``$XDG_CACHE_HOME/fastsig`` or ``~/.cache/fastsig``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numba
from numba.core import caching

_PACKAGE_DIR = Path(__file__).resolve().parent


def _sources_hash() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(__name__.encode())  # Numba names cache files after the module's last part only
    for path in sorted(_PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _candidate_dirs() -> list[Path]:
    candidates = []
    if os.environ.get("FASTSIG_CACHE_DIR"):
        candidates.append(Path(os.environ["FASTSIG_CACHE_DIR"]))
    if os.environ.get("NUMBA_CACHE_DIR"):
        candidates.append(Path(os.environ["NUMBA_CACHE_DIR"]) / "fastsig")
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append(Path(xdg) / "fastsig" if xdg else Path.home() / ".cache" / "fastsig")
    return candidates


def _writable_cache_dir() -> Path | None:
    tag = _sources_hash()
    for base in _candidate_dirs():
        path = base / tag
        try:
            path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path).close()
        except OSError:
            continue
        return path
    return None


class FastsigCacheLocator(caching._CacheLocator):
    """Numba cache locator for the kernels defined in the fastsig package."""

    cache_dir: Path | None = None
    source_stamp: str = ""

    def __init__(self, py_func, py_file):
        self._py_file = py_file  # Numba's "cannot cache" warning reads it
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self) -> str:
        return str(self.cache_dir)

    def get_source_stamp(self) -> str:
        return self.source_stamp

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if cls.cache_dir is None or not Path(py_file).resolve().is_relative_to(_PACKAGE_DIR):
            return None
        return cls(py_func, py_file)


def enable() -> bool:
    """Install the locator; True when kernels may be compiled with cache=True."""
    if os.environ.get("FASTSIG_DISABLE_CACHE") or numba.config.DISABLE_JIT:
        return False
    if numba.config.CACHE_LOCATOR_CLASSES:  # the user chose Numba's locators: respect that
        return False
    FastsigCacheLocator.cache_dir = _writable_cache_dir()
    if FastsigCacheLocator.cache_dir is None:
        return False
    FastsigCacheLocator.source_stamp = FastsigCacheLocator.cache_dir.name
    # Numba renamed _CacheImpl to CacheImpl; the list is shared by its subclasses.
    locators = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    if FastsigCacheLocator not in locators._locator_classes:
        locators._locator_classes.insert(0, FastsigCacheLocator)
    return True
