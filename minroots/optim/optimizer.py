r"""The optimizer base class: parameter groups, per-parameter state, saving and loading.

Book chapter 5, "Optimizers" (``book/05_optimizers.md``); tests in ``tests/test_optim.py``.

An optimizer turns gradients into parameter updates. Every optimizer in :mod:`minroots.optim`
shares the bookkeeping in this file, modelled on ``torch.optim.Optimizer``:

- **parameter groups**: a list of dicts, each with its own ``"params"`` and hyperparameters
  (``lr``, ``weight_decay``, ...). Passing plain Tensors makes one group; passing dicts lets, e.g.,
  biases and layer-norm gains skip weight decay (:func:`weight_decay_groups`).
- **the step**: :meth:`Optimizer.step` calls the closure, walks the groups and their parameters,
  fetches each gradient, creates a parameter's state at its first update
  (:meth:`Optimizer.init_state`) and keeps it. Each optimizer writes only its rule for one
  parameter, :meth:`Optimizer.update` (DeZero's ``update_one``).
- **state**: per-parameter buffers (Adam's :math:`m_t`, :math:`v_t`), keyed by the parameter's
  position in the flattened groups (0, 1, 2, ...), created on the parameter's first update and
  afterwards updated *in place*.
- **state_dict / load_state_dict**: plain data (numbers, lists, arrays; no pickle), so a checkpoint
  can be written as JSON + safetensors (:meth:`Optimizer.save_state`, through
  :mod:`minroots.persistence`).

A parameter is a :class:`minroots.Tensor` (anything with ``.data``, a floating NumPy/CuPy array,
and ``.grad``, an array of the same shape or ``None``). The optimizer writes into ``p.data`` in
place and never rebinds it, so views of a parameter (tied weights) stay valid.

Worked example, one SGD step by hand (:math:`\theta \leftarrow \theta - \eta g`):

>>> from minroots.optim import SGD
>>> p = minroots.tensor(np.array([1.0, 2.0]), requires_grad=True)
>>> p.grad = np.array([0.5, -1.0])
>>> opt = SGD([p], lr=0.1); opt.step()
>>> p.data                                  # [1 - 0.1 * 0.5, 2 + 0.1 * 1.0]
array([0.95, 2.1 ])
"""

from __future__ import annotations

import os
import threading

import numpy as np

from minroots import backend as B
from minroots.parallel import map_blocks
from minroots.persistence import load_arrays, read_json, save_arrays, write_json
from minroots.validation import describe

__all__ = ["Optimizer", "weight_decay_groups", "load_state"]


def _is_parameter(p) -> bool:
    """True for a Tensor-like object: ``.data`` is a floating array and ``.grad`` exists."""
    if not (hasattr(p, "data") and hasattr(p, "grad")):
        return False
    dtype = getattr(p.data, "dtype", None)
    shape = getattr(p.data, "shape", None)
    return dtype is not None and shape is not None and np.dtype(dtype).kind == "f"


class Optimizer:
    """Base class: holds parameter groups and state, and runs the step; subclasses give the rule.

    Args:
        params: an iterable of Tensors, or of dicts ``{"params": [...], "lr": ..., ...}``
            (parameter groups; options missing from a group take the optimizer's defaults).
        defaults: the optimizer's hyperparameters, e.g. ``{"lr": 1e-3, "momentum": 0.0}``.

    A subclass defines ``_check_group(group, where)`` (validate and normalise a group's options),
    :meth:`update` (the rule for one parameter, as DeZero's ``update_one``) and, if it keeps
    buffers, :meth:`init_state`; :meth:`step` does the rest.
    """

    #: names of the per-parameter state entries that are arrays (the rest are ints/floats)
    _array_state: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        expected = "params must be an iterable of Tensors or of parameter-group dicts"
        if _is_parameter(params) or isinstance(params, dict):
            raise TypeError(
                f"{name}: {expected}, got a single {describe(params)}; wrap it in a list"
            )
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: {expected}, got {describe(params)}") from None
        if not params:
            raise ValueError(
                f"{name}: params is empty; the optimizer got no parameters to optimize"
            )
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        self._scratch: dict = {}  # (array module, dtype, thread) -> flat work buffer, reused
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # -- parameter groups --------------------------------------------------------------------

    def add_param_group(self, group: dict) -> None:
        """Append a parameter group (a dict with ``"params"`` and optional hyperparameters)."""
        where = f"{type(self).__name__} param_groups[{len(self.param_groups)}]"
        if not isinstance(group, dict):
            raise TypeError(f"{where}: expected a dict with a 'params' key, got {describe(group)}")
        if "params" not in group:
            raise ValueError(f"{where}: the dict has no 'params' key")
        params = group["params"]
        params = [params] if _is_parameter(params) else list(params)
        if not params:
            raise ValueError(f"{where}: 'params' is empty")
        for j, p in enumerate(params):
            if not _is_parameter(p):
                raise TypeError(
                    f"{where}: params[{j}] must be a Tensor (with .data, a floating array, and "
                    f".grad), got {describe(p)}; wrap arrays with minroots.tensor(x, "
                    f"requires_grad=True)"
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError(f"{where}: some parameters appear more than once")
        group = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        group["params"] = params
        self._check_group(group, where)
        self.param_groups.append(group)

    def _check_group(self, group: dict, where: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _parameters(self):
        """Yield ``(flat_index, group, parameter)`` over all groups, in order."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, group, p
                i += 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (default, like torch) or fill them with 0."""
        for _, _, p in self._parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    # -- the step --------------------------------------------------------------------------------

    def step(self, closure=None):
        """Update every parameter that has a gradient (in place); returns ``closure()`` if given.

        The same for every optimizer: call the closure (which recomputes the loss and its
        gradients), then for each parameter of each group fetch its gradient, create its state at
        its first update (:meth:`init_state`), apply the optimizer's rule (:meth:`update`) and
        keep the state for the next step.
        """
        loss = closure() if closure is not None else None
        todo = [(i, group, p, self._grad(i, p)) for i, group, p in self._parameters()]
        # parameters are independent: the threads of minroots.parallel share them
        map_blocks(self._step_one, [item for item in todo if item[3] is not None])
        return loss

    def _step_one(self, item) -> None:
        i, group, p, grad = item
        state = self.state.get(i)
        if state is None:  # its first update
            state = self.init_state(p.data, group)
        self.update(p.data, grad, state, group)
        if state:  # an optimizer without buffers (plain SGD) keeps no state
            self.state[i] = state

    def init_state(self, theta, group: dict) -> dict:
        """The state of a parameter at its first update (Adam: :math:`t = 0`, :math:`m_0 = v_0 =
        0`), in ``theta``'s dtype and device; none by default."""
        return {}

    def update(self, theta, grad, state: dict, group: dict) -> None:  # pragma: no cover - abstract
        """Change one parameter's array ``theta`` in place, from its gradient ``grad``.

        ``state`` is this parameter's own dict (made by :meth:`init_state` at its first update;
        what the rule puts in it is kept for the next one) and ``group`` its parameter group's
        hyperparameters. ``grad`` is ``p.grad`` itself: never change it. ``self._work(theta, n)``
        gives ``n`` scratch arrays.
        """
        raise NotImplementedError

    def _grad(self, i: int, p):
        """``p.grad`` after checking its shape, or None when the parameter got no gradient."""
        g = p.grad
        if g is None:
            return None
        if g.shape != p.data.shape:
            raise ValueError(
                f"{type(self).__name__}.step: parameter {i} has shape {tuple(p.data.shape)} but its "
                f"gradient has shape {tuple(g.shape)}"
            )
        return g

    def _work(self, like, n: int = 1):
        """``n`` scratch arrays shaped like ``like``, views of one reused buffer per thread (no
        allocation per step; the buffer is as large as ``n`` copies of the biggest parameter seen)."""
        xp = B.get_array_module(like)
        key = (xp.__name__, like.dtype, threading.get_ident())
        buf = self._scratch.get(key)
        size = like.size
        if buf is None or buf.size < n * size:
            buf = xp.empty(n * size, dtype=like.dtype)
            self._scratch[key] = buf
        return [buf[k * size : (k + 1) * size].reshape(like.shape) for k in range(n)]

    # -- state dict ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The optimizer's state as plain data: ``{"state": {i: {...}}, "param_groups": [...]}``.

        ``state`` maps a parameter's flat index to its entries (``"step"``: int, arrays such as
        ``"exp_avg"``); arrays are *copies*, because the optimizer keeps updating its own buffers in
        place. ``param_groups`` holds each group's hyperparameters and, under ``"params"``, the flat
        indices of its parameters (JSON-able).
        """
        state = {}
        for i, entry in self.state.items():
            state[i] = {k: (v.copy() if k in self._array_state else v) for k, v in entry.items()}
        return {"state": state, "param_groups": self._group_options()}

    def _group_options(self) -> list[dict]:
        """Each group's hyperparameters (tuples as lists) and its parameters' flat indices."""
        groups, start = [], 0
        for group in self.param_groups:
            g = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
            g["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(g)
        return groups

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` exactly (hyperparameters and buffers, copied into arrays of
        each parameter's dtype and device)."""
        where = f"{type(self).__name__}.load_state_dict"
        saved = self._saved_groups(state_dict, where)
        params = {i: p for i, _, p in self._parameters()}
        # saved flat index -> this optimizer's flat index (groups are matched by position)
        index, start = {}, 0
        for new in saved:
            for offset, s in enumerate(new["params"]):
                index[int(s)] = start + offset
            start += len(new["params"])
        state = {}
        for key, entry in state_dict["state"].items():
            if int(key) not in index:
                raise ValueError(f"{where}: the state has an entry for unknown parameter {key!r}")
            i = index[int(key)]
            state[i] = self._restored(entry, params[i], i, where)
        for group, new in zip(self.param_groups, saved, strict=True):
            candidate = {**group, **{k: v for k, v in new.items() if k != "params"}}
            self._check_group(candidate, f"{where}: param_groups")
            group.clear()
            group.update(candidate)
        self.state = state

    def _saved_groups(self, state_dict, where: str) -> list[dict]:
        """The saved ``param_groups``, after checking that they match this optimizer's groups."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{where}: expected a dict with keys 'state' and 'param_groups'")
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                f"{where}: the state has {len(saved)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        for k, (old, new) in enumerate(zip(self.param_groups, saved, strict=True)):
            if len(new["params"]) != len(old["params"]):
                raise ValueError(
                    f"{where}: parameter group {k} has {len(new['params'])} parameters in the "
                    f"state but {len(old['params'])} in this optimizer"
                )
        return saved

    def _restored(self, entry: dict, p, i: int, where: str) -> dict:
        """One parameter's saved state, its arrays copied into fresh buffers on ``p``'s device."""
        unexpected = set(entry) - set(self._array_state) - {"step"}
        if unexpected:
            raise ValueError(f"{where}: parameter {i} has unexpected state {sorted(unexpected)}")
        xp = B.get_array_module(p.data)
        restored = {}
        for k, v in entry.items():
            if k not in self._array_state:
                restored[k] = int(v)
                continue
            if tuple(v.shape) != tuple(p.data.shape):
                raise ValueError(
                    f"{where}: state {k!r} of parameter {i} has shape {tuple(v.shape)}, "
                    f"the parameter has shape {tuple(p.data.shape)}"
                )
            arr = xp.empty_like(p.data)
            arr[...] = xp.asarray(v)  # a fresh buffer: no aliasing with the caller's
            restored[k] = arr
        return restored

    def save_state(self, path_prefix) -> tuple[str, str]:
        """Write the state to ``<prefix>.json`` (hyperparameters, steps) and
        ``<prefix>.safetensors`` (buffers, as ``"state.<i>.<name>"``), each atomically; no pickle.

        Returns the two paths. Restore with ``opt.load_state_dict(load_state(prefix))``.
        """
        arrays, numbers = {}, {}
        for i, entry in self.state.items():  # the live buffers: written, never copied
            numbers[str(i)] = {k: v for k, v in entry.items() if k not in self._array_state}
            arrays.update({f"state.{i}.{k}": v for k, v in entry.items() if k in self._array_state})
        prefix = os.fspath(path_prefix)
        json_path, st_path = f"{prefix}.json", f"{prefix}.safetensors"
        save_arrays(st_path, arrays)
        meta = {
            "optimizer": type(self).__name__,
            "array_state": list(self._array_state),
            "state": numbers,
            "param_groups": self._group_options(),
        }
        write_json(json_path, meta)
        return json_path, st_path

    def load_state(self, path_prefix) -> None:
        """Load what :meth:`save_state` wrote (``load_state_dict(load_state(prefix))``)."""
        self.load_state_dict(load_state(path_prefix))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for k, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {k}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def load_state(path_prefix) -> dict:
    """Read ``<prefix>.json`` + ``<prefix>.safetensors`` written by :meth:`Optimizer.save_state`
    back into a state dict (arrays come back as NumPy; ``load_state_dict`` moves them)."""
    prefix = os.fspath(path_prefix)
    meta = read_json(f"{prefix}.json", "load_state", expect=dict)
    arrays, _ = load_arrays(f"{prefix}.safetensors")
    try:
        state = {int(key): dict(entry) for key, entry in meta["state"].items()}
        for name, arr in arrays.items():
            _, i, k = name.split(".", 2)
            state.setdefault(int(i), {})[k] = arr
        groups = meta["param_groups"]
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise TypeError(
                f"load_state: param_groups must be a list of objects, got {groups!r:.60}"
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing the field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"load_state: {prefix}.json and .safetensors do not hold an optimizer "
                         f"state: {detail}") from None  # fmt: skip
    return {"state": state, "param_groups": groups}


def weight_decay_groups(params, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group (matrices: ``ndim >= 2``) and an undecayed one
    (biases, layer-norm gains: ``ndim < 2``), as nanoGPT and GPT-2 training do.

    ``params`` is an iterable of Tensors or of ``(name, Tensor)`` pairs (``named_parameters()``).

    >>> from minroots.nn import Linear
    >>> groups = weight_decay_groups(Linear(4, 2).parameters(), 0.1)   # the weight; the bias
    >>> [g["weight_decay"] for g in groups]
    [0.1, 0.0]
    """
    decay, no_decay = [], []
    for item in params:
        p = item[1] if isinstance(item, tuple) else item
        if not _is_parameter(p):
            raise TypeError(f"weight_decay_groups: expected Tensors, got {describe(p)}")
        (decay if len(p.data.shape) >= 2 else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
