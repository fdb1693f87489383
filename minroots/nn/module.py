"""``Module`` and ``Parameter``: how a model holds its weights, finds them, saves and loads them.

Book chapter 3, "Layers and softmax attention" (``book/03_attention.md``); tests in
``tests/test_nn_module.py``.

A :class:`Parameter` is a Tensor that a module owns and an optimizer updates. A :class:`Module`
registers parameters and sub-modules simply by attribute assignment, in insertion order (a dict,
never a set, so every walk over a model is deterministic)::

    class TwoLayer(Module):
        def __init__(self):
            super().__init__()
            self.fc1 = Linear(4, 8)          # registered as a child module "fc1"
            self.fc2 = Linear(8, 2)

    [name for name, _ in TwoLayer().named_parameters()]
    # ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']

A parameter shared by two modules (GPT-2's tied input embedding and output layer) is listed once by
``parameters()``, and under both names by ``state_dict()``, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.validation import shown

__all__ = ["Parameter", "Module", "ModuleList", "Sequential"]


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a module (``requires_grad=True``).

    >>> Parameter(np.zeros((2, 3), dtype=np.float32)).requires_grad
    True
    """

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=False)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model: override ``__init__`` (assign parameters and
    sub-modules as attributes) and ``forward``; call the module like a function."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration by assignment
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"Module.__setattr__: cannot assign {name!r} before Module.__init__() ran; call "
                "super().__init__() first"
            )
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        # only called when normal lookup fails: parameters, modules and buffers live in dicts
        d = self.__dict__
        for store in ("_parameters", "_modules", "_buffers"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._modules, self._buffers):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """Keep a non-trainable array (e.g. a positional-encoding table) with the module.

        Persistent buffers appear in ``state_dict()``; non-persistent ones are rebuilt by code.
        """
        self._buffers[name] = array
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward: a Module must define forward(), "
                                  "got none")  # fmt: skip

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ walking the tree
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, depth first, each once (explicit stack, no recursion)."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def _all_named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every (name, parameter) pair, a shared parameter under each of its names."""
        stack = [("", self)]
        while stack:
            prefix, mod = stack.pop()
            for k, p in mod._parameters.items():
                yield prefix + k, p
            stack.extend(reversed([(f"{prefix}{k}.", m) for k, m in mod._modules.items()]))

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs in registration order; a shared parameter appears once."""
        seen = set()
        for name, p in self._all_named_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, object]]:
        for name, mod in self.named_modules():
            for k, b in mod._buffers.items():
                yield (f"{name}.{k}" if name else k), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalar weights (shared ones counted once)."""
        return sum(
            int(p.data.size) for p in self.parameters() if p.requires_grad or not trainable_only
        )

    # ------------------------------------------------------------ modes and housekeeping
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active); returns the module for chaining."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off); the same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``backward`` adds into ``.grad``)."""
        for p in self.parameters():
            p.grad = None

    def to(self, device: str | None = None, dtype=None) -> Module:
        """Move every parameter and buffer to ``device`` (``"cpu"``/``"cuda"``) and/or cast it to a
        floating ``dtype``, in place (the Parameter objects stay the same, so tied weights stay
        tied). Create the optimizer after this call: its state lives where the weights were."""
        if device is not None:
            B.backend_name(device, "to")  # an unknown name fails before anything moves
        if dtype is not None and np.dtype(dtype).kind != "f":
            raise TypeError(f"to: dtype must be a floating dtype, got {shown(dtype)}")

        def convert(a):
            if device is not None:
                a = B.to_device(a, device)
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype, copy=False)
            return a

        for p in self.parameters():
            p.data = convert(p.data)
            if p.grad is not None:
                p.grad = convert(p.grad)
        for mod in self.modules():
            for k, b in list(mod._buffers.items()):
                mod._buffers[k] = convert(b)
        return self

    # ------------------------------------------------------------ state
    def _persistent_buffers(self) -> Iterator[tuple[str, Module, str]]:
        """``(full name, owning module, buffer key)`` of every buffer that ``state_dict`` holds."""
        for name, mod in self.named_modules():
            for k in mod._buffers:
                if k not in mod._non_persistent:
                    yield (f"{name}.{k}" if name else k), mod, k

    def state_dict(self) -> dict[str, object]:
        """name -> array for every parameter (a shared one under each name, as PyTorch does) and
        every persistent buffer. The arrays are the live data, not copies."""
        out = {name: p.data for name, p in self._all_named_parameters()}
        out.update({name: mod._buffers[k] for name, mod, k in self._persistent_buffers()})
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy arrays into the parameters and buffers, in place (optimizers keep their references).

        With ``strict=True`` any missing or unexpected name, or a shape mismatch, raises a
        ``KeyError``/``ValueError`` listing them all; otherwise the matching names load and the
        ``(missing, unexpected)`` lists are returned. Values may be arrays or Tensors; they are cast
        to each parameter's dtype and device.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(
                f"load_state_dict: expected a mapping name -> array, got {type(state_dict).__name__}"
            )
        current = self.state_dict()
        missing = [k for k in current if k not in state_dict]
        unexpected = [k for k in state_dict if k not in current]
        mismatched = [
            f"{k}: checkpoint {tuple(v.shape)}, model {tuple(current[k].shape)}"
            for k, v in state_dict.items()
            if k in current and tuple(v.shape) != tuple(current[k].shape)
        ]
        if mismatched:
            raise ValueError(
                f"load_state_dict: shape mismatch for {len(mismatched)} entries: "
                + "; ".join(mismatched)
            )
        for k, v in state_dict.items():  # integers read into float weights are a damaged file
            kind = getattr(getattr(v, "dtype", None), "kind", None)
            if k in current and current[k].dtype.kind == "f" and kind not in ("f", None):
                raise ValueError(f"load_state_dict: {k} must be a floating-point array like the "
                                 f"model's {current[k].dtype}, got dtype {v.dtype}")  # fmt: skip
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict (strict): {' and '.join(parts)}")
        buffers = {name: (mod, k) for name, mod, k in self._persistent_buffers()}
        for name, v in state_dict.items():
            if name not in current:
                continue
            dst = current[name]
            v = B.to_device(v.data if isinstance(v, Tensor) else v, B.device_of(dst))
            if name in buffers:  # a buffer is rebound to its own copy (never the caller's array)
                mod, k = buffers[name]
                mod._buffers[k] = v.astype(dst.dtype, copy=True)
            else:  # a parameter is written in place: optimizers and tied names keep pointing at it
                dst[...] = v.astype(dst.dtype, copy=False)
        return missing, unexpected

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """One line of settings shown inside the parentheses, e.g. ``in=4, out=8, bias=True``."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}(" + (extra if extra else "")]
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules, registered under the names ``"0"``, ``"1"``, ...

    >>> from minroots.nn import Linear
    >>> layers = ModuleList([Linear(4, 4) for _ in range(3)]); len(layers)
    3
    """

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self._modules[str(len(self._modules))] = module
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ModuleList: index {i} out of range for {n} modules")
        return self._modules[str(i % n)]

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "ModuleList.forward: a ModuleList is a container: iterate over it and call each module"
        )


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules: Module):
        super().__init__(modules)

    def forward(self, x):
        for m in self:
            x = m(x)
        return x
