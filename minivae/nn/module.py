"""``Module`` and ``Parameter``: the container API, modelled on ``torch.nn.Module``.

Parameter names follow PyTorch's (``weight``, ``bias``, ``running_mean`` ...) and
sub-module names are joined with ``.`` in :meth:`Module.named_parameters`, so a
``state_dict`` maps one-to-one onto the equivalent PyTorch model's. (Checkpoints
store the same names ``/``-joined.)
"""
from __future__ import annotations

from collections import OrderedDict

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A trainable tensor (``requires_grad=True``), registered by its Module."""

    __slots__ = ()

    def __init__(self, data, name: str | None = None):
        super().__init__(data, requires_grad=True, name=name)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class of every layer and model.

    Attributes that are :class:`Parameter` or :class:`Module` instances are
    registered automatically, in assignment order. Non-trainable state that must
    be saved (BatchNorm running statistics) is registered with
    :meth:`register_buffer`.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, key, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before assigning attributes")
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(key, None)
        if isinstance(value, Parameter):
            self._parameters[key] = value
        elif isinstance(value, Module):
            self._modules[key] = value
        object.__setattr__(self, key, value)

    def register_buffer(self, name: str, array) -> None:
        """Register a non-trainable array (saved in checkpoints, moved with the model)."""
        self._buffers[name] = None
        object.__setattr__(self, name, array)

    # -- traversal -------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = ""):
        """``(dotted_name, Parameter)`` pairs, each parameter once, PyTorch order."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name in module._buffers:
                yield (f"{module_name}.{name}" if module_name else name), getattr(module, name)

    def state_dict(self) -> "OrderedDict[str, object]":
        """Parameters and buffers by dotted name as NumPy arrays, with PyTorch's names and layouts
        (``encoder.1.weight`` is ``(out, in)``, conv weights ``(out, in, kh, kw)``), so weights move
        to PyTorch in two lines::

            state = {k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()}
            torch_model.load_state_dict(state)

        On the CPU the arrays are views of the parameters (as PyTorch's tensors are); on CuPy, copies.
        """
        return OrderedDict((k, backend.to_host(v)) for k, v in self._device_state().items())

    def _device_state(self) -> "OrderedDict[str, object]":
        state = OrderedDict((n, p.data) for n, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers *in place*.

        In place matters: an optimiser keeps every parameter as a view into one
        contiguous buffer, and rebinding ``.data`` would silently detach it.
        """
        own = self._device_state()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
        for key, target in own.items():
            if key not in state:
                continue
            value = state[key]
            value = value.data if isinstance(value, Tensor) else value
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"shape mismatch for {key!r}: model has {tuple(target.shape)}, "
                                 f"state has {tuple(value.shape)}")
            xp = backend.get_array_module(target)
            target[...] = xp.asarray(value, dtype=target.dtype)

    # -- modes -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- calling -----------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + (")" if len(lines) == 1 else "\n)")
