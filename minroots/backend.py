"""The array backend: one place decides whether arrays live in NumPy (CPU) or CuPy (GPU).

Book chapter 1, "Arrays and the backend" (``book/01_backend.md``).

Everything above this module asks it for the array module instead of importing NumPy or CuPy:

>>> import minroots.backend as B
>>> B.get_array_module(np.zeros(3)).__name__   # numpy for a NumPy array, cupy for a CuPy one
'numpy'
>>> B.current()                                 # after B.use("cupy"), new tensors live on the GPU
'numpy'

**Device names.** PyTorch calls the two places an array can live ``"cpu"`` and ``"cuda"``; the
array libraries are ``"numpy"`` and ``"cupy"``. Every ``device=`` argument in minroots
(``Tensor.to``, ``Module.to``, ``minroots.zeros(..., device=)``, :func:`use`, :func:`rng`) accepts
either vocabulary, plus ``"gpu"``, through one table, :data:`DEVICES`:

>>> B.backend_name("cuda"), B.device_name("numpy")
('cupy', 'cpu')

This is the only module that imports CuPy. A default dtype (float32) is kept here too, and one
seeded random generator per backend (:func:`manual_seed`), so runs are reproducible.
"""

from __future__ import annotations

import math
import os

import numpy as np

from minroots.validation import shown

__all__ = [
    "DEVICES",
    "backend_name",
    "device_name",
    "use",
    "current",
    "xp",
    "get_array_module",
    "to_numpy",
    "to_device",
    "device_of",
    "cupy_available",
    "default_dtype",
    "set_default_dtype",
    "manual_seed",
    "rng",
    "get_rng_state",
    "set_rng_state",
    "erf",
    "scatter_add",
]
__all__ += ["cuda", "synchronize", "half_dtype"]  # chapter 13 (training at scale), kept apart

_INSTALL_HINT = 'install it with `pip install "minroots[gpu]"` (CuPy for CUDA 12) on a machine with an NVIDIA GPU'

#: every accepted device name -> the backend that holds its arrays (the one table of names)
DEVICES = {"cpu": "numpy", "numpy": "numpy", "cuda": "cupy", "gpu": "cupy", "cupy": "cupy"}
_DEVICE_OF_BACKEND = {"numpy": "cpu", "cupy": "cuda"}

_state = {"name": "numpy", "dtype": np.dtype(np.float32)}
_rngs: dict[str, object] = {}
_seed: list[int] = [0]


def _import_cupy():
    """Return the ``cupy`` module, or raise a RuntimeError that says how to get it."""
    try:
        import cupy  # an optional dependency (the "gpu" extra): imported only when asked for
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            f"backend: the CuPy backend was requested but CuPy is not installed; {_INSTALL_HINT}"
        ) from exc
    try:
        ok = cupy.cuda.is_available()
    except Exception:  # noqa: BLE001 - CuPy raises driver-specific errors here
        ok = False
    if not ok:
        raise RuntimeError(
            f"backend: the CuPy backend was requested but no CUDA GPU is available; {_INSTALL_HINT}"
        )
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and sees a CUDA GPU."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def backend_name(device: str, where: str | None = None) -> str:
    """The backend, ``"numpy"`` or ``"cupy"``, of any name in :data:`DEVICES`; else a ValueError
    that lists the names (``where``, the function the user called, starts the message)."""
    if isinstance(device, str) and device in DEVICES:
        return DEVICES[device]
    raise ValueError(
        f"{where or 'backend_name'}: device must be 'cpu' or 'cuda' (or the backends 'numpy' "
        f"or 'cupy'; 'gpu' is 'cuda'), got {shown(device)}"
    )


def device_name(device: str, where: str | None = None) -> str:
    """PyTorch's name, ``"cpu"`` or ``"cuda"``, of any name in :data:`DEVICES`."""
    return _DEVICE_OF_BACKEND[backend_name(device, where)]


def use(name: str) -> None:
    """Choose the backend for new arrays: ``"numpy"``/``"cpu"`` or ``"cupy"``/``"cuda"``."""
    name = backend_name(name, "use")
    if name == "cupy":
        _import_cupy()
    _state["name"] = name


def current() -> str:
    """The name of the backend new arrays are created on: ``"numpy"`` or ``"cupy"``."""
    return _state["name"]


def xp(device: str | None = None):
    """The array module (``numpy`` or ``cupy``) of ``device``, or of the current backend."""
    name = _state["name"] if device is None else backend_name(device)
    return _import_cupy() if name == "cupy" else np


def _is_cupy(x) -> bool:
    # by the type's module, so that asking never imports CuPy
    return type(x).__module__.startswith("cupy")


def get_array_module(x):
    """The array module that owns ``x`` (NumPy for anything that is not a CuPy array)."""
    return _import_cupy() if _is_cupy(x) else np


def device_of(x) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if _is_cupy(x) else "cpu"


def to_numpy(x) -> np.ndarray:
    """Copy a CuPy array to the host; NumPy arrays and scalars pass through as NumPy arrays."""
    return x.get() if _is_cupy(x) else np.asarray(x)


def to_device(x, device: str):
    """Return ``x`` as an array on ``device`` (``"cpu"`` or ``"cuda"``), copying only if needed."""
    if backend_name(device, "to") == "numpy":
        return to_numpy(x)
    return _import_cupy().asarray(x)


def default_dtype() -> np.dtype:
    """The dtype of tensors made from Python numbers and lists (float32 unless changed)."""
    return _state["dtype"]


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype (``float32`` or ``float64``)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"set_default_dtype: dtype must be float32 or float64, got {dtype}")
    _state["dtype"] = dtype


def manual_seed(seed: int) -> None:
    """Seed the random generator of every backend, so that runs are reproducible."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {shown(seed)}")
    _seed[0] = int(seed)
    _rngs.clear()


def rng(name: str | None = None):
    """The seeded random generator of a backend or device (the current backend by default).

    NumPy uses ``numpy.random.Generator`` (PCG64); CuPy uses ``cupy.random.Generator``.
    """
    name = _state["name"] if name is None else backend_name(name, "rng")
    if name not in _rngs:
        if name == "cupy":
            cupy = _import_cupy()
            _rngs[name] = cupy.random.default_rng(_seed[0])
        else:
            _rngs[name] = np.random.default_rng(_seed[0])
    return _rngs[name]


def erf(x):
    """The error function, elementwise, on the array's own device (the exact GELU needs it).

    NumPy has no ``erf``: SciPy's is used when installed, else Python's ``math.erf`` per element
    (exact to double precision, slower).
    """
    if device_of(x) == "cuda":
        from cupyx.scipy.special import erf as cupy_erf  # optional (CuPy), only on the GPU

        return cupy_erf(x)
    try:
        from scipy.special import erf as scipy_erf  # optional: SciPy is not a dependency
    except ImportError:
        return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return scipy_erf(x).astype(x.dtype, copy=False)


def scatter_add(target, index, values) -> None:
    """``target[index] += values``, adding once per occurrence when ``index`` repeats (in place)."""
    if device_of(target) == "cuda":
        import cupyx  # optional (CuPy), only on the GPU

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def cuda():
    """CuPy's CUDA layer, ``cupy.cuda``: devices, streams, events and NCCL (``cuda().nccl``), for
    the GPU communicator of :mod:`minroots.distributed` (chapter 13)."""
    return _import_cupy().cuda


def synchronize(device: str | None = None) -> None:
    """Wait until the GPU has finished its queued work (nothing to wait for on the CPU); for
    timing GPU code, whose calls return before the work is done."""
    if backend_name(device or _state["name"], "synchronize") == "cupy":
        _import_cupy().cuda.Device().synchronize()


#: the 16-bit formats of mixed precision (chapter 13): name -> where the dtype comes from
_HALF = {"fp16": "float16", "bf16": "bfloat16 (from ml_dtypes)"}


def half_dtype(name: str, device: str | None = None):
    """The 16-bit dtype ``"fp16"`` (IEEE half) or ``"bf16"`` (bfloat16) on a device's backend;
    a RuntimeError that says what is missing when the backend lacks it.

    NumPy has float16; bfloat16 comes from the ``ml_dtypes`` package (``minroots[bf16]``), which
    CuPy also uses when it supports bfloat16 (CuPy 14 and later).

    >>> half_dtype("fp16")
    dtype('float16')
    """
    if name not in _HALF:
        raise ValueError(f"half_dtype: name must be 'fp16' or 'bf16', got {name!r}")
    backend = backend_name(device or _state["name"], "half_dtype")
    if name == "fp16":
        return np.dtype(np.float16)
    try:
        import ml_dtypes  # optional (the "bf16" extra): NumPy's dtype extension for bfloat16
    except ImportError:
        raise RuntimeError(
            'half_dtype: precision="bf16" needs the ml_dtypes package for the bfloat16 dtype; install it with '
            '`pip install "minroots[bf16]"`, or use precision="fp16" or "float32"'
        ) from None
    dtype = np.dtype(ml_dtypes.bfloat16)
    if backend == "cupy":
        try:
            _import_cupy().zeros(2, dtype=dtype).sum()
        except Exception:  # noqa: BLE001 - CuPy without bfloat16 raises various errors
            raise RuntimeError(
                'half_dtype: precision="bf16" needs CuPy with bfloat16 support (CuPy 14 or later) on '
                'device="cuda"; this CuPy lacks it: upgrade CuPy or use precision="fp16"'
            ) from None
    return dtype


def get_rng_state() -> dict:
    """A JSON-serialisable snapshot of every backend's generator (for checkpoints)."""
    state = {"seed": _seed[0], "numpy": _bitgen_state(rng("numpy"))}
    if "cupy" in _rngs:
        state["cupy"] = _bitgen_state(_rngs["cupy"])
    return state


def set_rng_state(state: dict) -> None:
    """Restore a snapshot taken by :func:`get_rng_state`."""
    _seed[0] = int(state["seed"])
    _rngs.clear()
    rng("numpy").bit_generator.state = _from_json(state["numpy"])
    if "cupy" in state and cupy_available():
        rng("cupy").bit_generator.state = _from_json(state["cupy"])


def _bitgen_state(gen) -> dict:
    return _to_json(gen.bit_generator.state)


def _to_json(obj):
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _from_json(obj):
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _from_json(v) for k, v in obj.items()}
    return obj


if os.environ.get("MINROOTS_BACKEND"):
    use(os.environ["MINROOTS_BACKEND"])
