"""A virtual CUDA device for CPU-only test machines.

:class:`VCuda` wraps a CPU tensor and reports ``cuda:0`` / ``is_cuda`` to
Python while computing on the CPU, so data-dependent code, ``.item()`` and
autograd all run. In every ATen op it checks what a CUDA build checks:

- a CPU tensor (not a 0-dim scalar) mixed with a ``cuda:0`` one, i.e. a
  tensor made without ``device=`` (a real GPU raises "Expected all tensors
  to be on the same device");
- a CPU ``torch.Generator`` used for a ``cuda:0`` tensor or passed to a
  factory with ``device='cuda'``.

Factories called with ``device='cuda'`` (``torch.arange(n,
device=x.device)``) run on the CPU through a ``TorchFunctionMode`` and
return VCuda tensors. Every host-device synchronisation (``.item()``,
``bool()``, ``int()``, ``tolist()``, ``.cpu()``, ``nonzero``, boolean-mask
indexing, ``unique``, host-to-device copies, ``torch.cuda.synchronize``,
waiting on a CUDA event) is recorded with the file:line that caused it and
whether that line is the plug-in's (``nofrost_mm/``) or a library's
(mmengine moving the batch to the device, its logger reading a loss).

Only this test suite uses it: a GPU-readiness check without a GPU. The
permanent negative controls are in ``test_harness.py``.
"""

import collections
import contextlib
import os
import sys
import time
from typing import List, NamedTuple, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

VDEV = torch.device('cuda', 0)
_PACKAGE = (
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'nofrost_mm'
    )
    + os.sep
)
_TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_HERE = os.path.abspath(__file__)
_STDLIB = os.path.dirname(os.path.abspath(contextlib.__file__)) + os.sep


class Sync(NamedTuple):
    """One host-device synchronisation."""

    kind: str
    site: str  # file:line of the first caller outside torch and this module
    own: bool  # that caller is the plug-in's code (nofrost_mm/)


class DeviceMixError(RuntimeError):
    """What a CUDA build raises where this device saw a device mix."""


class Recorder:
    """What one :func:`virtual_cuda` block saw.

    Args:
        strict (bool): Raise :class:`DeviceMixError` at the first device mix
            (the traceback then points at the faulty line). Defaults to True.
    """

    def __init__(self, strict: bool = True):
        self.strict = strict
        self.syncs: List[Sync] = []
        self.mismatches: 'collections.OrderedDict[str, str]' = collections.OrderedDict()

    def sync(self, kind: str) -> None:
        site, own = _caller()
        self.syncs.append(Sync(kind, site, own))

    def mismatch(self, message: str) -> None:
        site, _ = _caller()
        self.mismatches.setdefault(site, message)
        if self.strict:
            raise DeviceMixError(f'[virtual cuda] {message} at {site}')

    def own_syncs(self, start: int = 0) -> List[Sync]:
        """The plug-in's own syncs, from the ``start``-th recorded on."""
        return [s for s in self.syncs[start:] if s.own]

    def by_site(self, start: int = 0, own_only: bool = True) -> collections.Counter:
        """Counts per (site, kind), for failure messages."""
        return collections.Counter(
            (s.site, s.kind) for s in self.syncs[start:] if s.own or not own_only
        )


_RECORDER: List[Optional[Recorder]] = [None]


# library functions whose sync is the library's own business: mmengine
# moving the batch to the device (once per iteration, non-blocking from
# pinned memory on a GPU)
LIBRARY_TRANSFERS = ('cast_data',)


def _short(frame) -> str:
    name = frame.f_code.co_filename
    if name.startswith(_PACKAGE):
        name = 'nofrost_mm/' + name[len(_PACKAGE) :]
    else:
        name = name.split('site-packages/')[-1].split('/work/main/')[-1]
    return f'{name}:{frame.f_lineno}'


def _skipped(frame) -> bool:
    name = frame.f_code.co_filename
    return (
        name.startswith(_TORCH) or name == _HERE or name.startswith(_STDLIB) or name.startswith('<')
    )


def _caller():
    """file:line of the line that synced, and whether it is the plug-in's:
    the innermost frame outside torch, this module and the standard
    library; a library function (mmengine's message hub reading a tensor)
    called from the plug-in counts as the plug-in's line that called it,
    except the batch transfer (:data:`LIBRARY_TRANSFERS`)."""
    frame = sys._getframe(2)
    while frame is not None and _skipped(frame):
        frame = frame.f_back
    if frame is None:
        return '?', False
    if frame.f_code.co_filename.startswith(_PACKAGE):
        return _short(frame), True
    library, outer = frame, frame.f_back
    while outer is not None and (
        _skipped(outer)
        or not (
            outer.f_code.co_filename.startswith(_PACKAGE)
            or os.sep + 'tests' + os.sep in outer.f_code.co_filename
        )
    ):
        outer = outer.f_back
    if (
        outer is None
        or not outer.f_code.co_filename.startswith(_PACKAGE)
        or library.f_code.co_name in LIBRARY_TRANSFERS
    ):
        return _short(library), False
    return f'{_short(outer)} (in {_short(library)})', True


def _record_sync(kind: str) -> None:
    if _RECORDER[0] is not None:
        _RECORDER[0].sync(kind)


def _mismatch(message: str) -> None:
    if _RECORDER[0] is not None:
        _RECORDER[0].mismatch(message)


def _is_v(t) -> bool:
    return isinstance(t, VCuda)


def _tagged(t) -> bool:
    return getattr(t, '_vc_seen', False)


def _tag(t):
    """Marks a CPU tensor seen at the Python level (made or passed by code
    under test): only such tensors count as a device mix, not the CPU
    scalars torch's own kernels make."""
    if isinstance(t, torch.Tensor) and not _is_v(t) and t.device.type == 'cpu':
        try:
            t._vc_seen = True
        except Exception:  # noqa: BLE001 (tensors that take no attributes)
            pass
    return t


class VCuda(torch.Tensor):
    """A CPU tensor that says it lives on ``cuda:0``."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor, requires_grad: bool = False):
        assert type(elem) is torch.Tensor and elem.device.type == 'cpu', (type(elem), elem.device)
        r = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device='cpu',
            requires_grad=requires_grad,
        )
        r.elem = elem
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl

    @property
    def device(self):
        return VDEV

    @property
    def is_cuda(self):
        return True

    @property
    def is_cpu(self):
        return False

    def __repr__(self):
        return f'VCuda({self.elem!r})'

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        with torch._C.DisableTorchFunction():
            new = VCuda(self.elem.clone(), requires_grad=self.requires_grad)
        memo[id(self)] = new
        return new

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        flat, _ = tree_flatten((args, kwargs))
        has_v = any(_is_v(t) for t in flat if isinstance(t, torch.Tensor))
        base = str(func.overloadpacket) if hasattr(func, 'overloadpacket') else str(func)
        if has_v:
            for g in flat:
                if isinstance(g, torch.Generator) and g.device.type == 'cpu':
                    _mismatch(f'{func}: a CPU torch.Generator used on a cuda tensor')
        index_op = base in (
            'aten.index',
            'aten.index_put_',
            'aten.index_put',
            'aten._index_put_impl_',
        )
        if base == 'aten.copy_' and has_v:
            dst, src = args[0], args[1]
            if _is_v(dst) and not _is_v(src) and src.dim() > 0:
                _record_sync('host-to-device copy_')
            elif _is_v(src) and not _is_v(dst):
                _record_sync('device-to-host copy_')
        elif has_v:
            bad = []
            for i, a in enumerate(args):
                for t in a if isinstance(a, (list, tuple)) else [a]:
                    if (
                        isinstance(t, torch.Tensor)
                        and not _is_v(t)
                        and t.dim() > 0
                        and _tagged(t)
                        and not (index_op and i == 1)
                    ):
                        bad.append(tuple(t.shape))
            bad += [
                tuple(t.shape)
                for t in kwargs.values()
                if isinstance(t, torch.Tensor) and not _is_v(t) and t.dim() > 0 and _tagged(t)
            ]
            if bad:
                _mismatch(
                    f'{func}: CPU tensor(s) of shape {bad} mixed with cuda:0 '
                    'tensors (a GPU raises "Expected all tensors to be on the '
                    'same device")'
                )
        if base in ('aten._local_scalar_dense', 'aten.is_nonzero', 'aten.item'):
            _record_sync('scalar read')
        elif (
            base
            in (
                'aten.nonzero',
                'aten.masked_select',
                'aten._unique2',
                'aten.unique_dim',
                'aten.unique_consecutive',
                'aten.equal',
            )
            and has_v
        ):
            _record_sync(base)
        elif (
            base == 'aten.repeat_interleave'
            and has_v
            and func._overloadname in ('Tensor', 'self_Tensor')
            and kwargs.get('output_size') is None
        ):
            _record_sync('repeat_interleave with tensor repeats')
        elif index_op and has_v and len(args) > 1:
            if any(
                isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)
                for t in (args[1] or [])
            ):
                _record_sync(f'boolean-mask {base}')
        if kwargs.get('device') is not None and torch.device(kwargs['device']).type in (
            'meta',
            'cuda',
        ):
            kwargs['device'] = torch.device('cpu')
        out = func(
            *tree_map(lambda t: t.elem if _is_v(t) else t, args),
            **tree_map(lambda t: t.elem if _is_v(t) else t, kwargs),
        )
        return tree_map(
            lambda t: VCuda(t) if isinstance(t, torch.Tensor) and not _is_v(t) else t, out
        )


def _map_out(fn, out):
    if isinstance(out, torch.Tensor):
        return fn(out)
    if isinstance(out, torch.Size) or not isinstance(out, (tuple, list)):
        return out
    items = [fn(o) if isinstance(o, torch.Tensor) else o for o in out]
    if type(out) in (tuple, list):
        return type(out)(items)
    try:
        return type(out)(items)  # torch.return_types
    except TypeError:
        return type(out)(*items)


class _Mode(TorchFunctionMode):
    """Runs ``device='cuda'`` factories on the CPU; counts transfers."""

    SCALAR_READS = {
        torch.Tensor.tolist: 'tolist()',
        torch.Tensor.numpy: 'numpy()',
        torch.Tensor.item: 'item()',
        torch.Tensor.__bool__: 'bool()',
        torch.Tensor.__int__: 'int()',
        torch.Tensor.__float__: 'float()',
        torch.Tensor.__index__: '__index__()',
        torch.Tensor.__array__: '__array__()',
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self.SCALAR_READS and args and _is_v(args[0]):
            _record_sync(self.SCALAR_READS[func])
            return func(args[0].elem, *args[1:], **kwargs)
        if func is torch.Tensor.cpu and _is_v(args[0]):
            _record_sync('.cpu()')
            return args[0].elem.clone()
        if func is torch.Tensor.cuda:
            if _is_v(args[0]):
                return args[0]
            _record_sync('host-to-device .cuda()')
            return VCuda(args[0].clone())
        if func is torch.Tensor.to:
            return self._to(func, args, kwargs)
        if func is torch.nn.functional.one_hot and _is_v(args[0]):
            return VCuda(func(args[0].elem, *args[1:], **kwargs))
        dev = kwargs.get('device')
        if dev is not None and torch.device(dev).type == 'cuda':
            g = kwargs.get('generator')
            if isinstance(g, torch.Generator) and g.device.type == 'cpu':
                _mismatch(
                    f'{getattr(func, "__name__", func)}(device=cuda, generator=a CPU '
                    'generator): a GPU raises "Expected a \'cuda\' device type for '
                    'generator"'
                )
            kwargs['device'] = 'cpu'
            return _map_out(lambda t: t if _is_v(t) else VCuda(t), func(*args, **kwargs))
        flat, _ = tree_flatten((args, kwargs))
        for t in flat:
            _tag(t)
        has_v = any(_is_v(t) for t in flat)
        out = func(*args, **kwargs)
        if has_v:  # a Python-level composite keeps its inputs' device
            return _map_out(
                lambda t: (
                    VCuda(t)
                    if not _is_v(t) and t.device.type == 'cpu' and not t.requires_grad
                    else t
                ),
                out,
            )
        return _map_out(_tag, out)

    @staticmethod
    def _to(func, args, kwargs):
        self_ = args[0]
        dev, dtype, _, memory_format = torch._C._nn._parse_to(*args[1:], **kwargs)
        other = (
            args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else kwargs.get('other')
        )
        if isinstance(other, torch.Tensor):
            dev = other.device
        rest = {
            k: v for k, v in (('dtype', dtype), ('memory_format', memory_format)) if v is not None
        }
        if dev is not None and dev.type == 'cuda':
            if _is_v(self_):
                return self_.to(**rest) if rest else self_
            _record_sync('host-to-device .to(cuda)')
            return VCuda(self_.to(**rest).clone() if rest else self_.clone())
        if dev is not None and dev.type == 'cpu' and _is_v(self_):
            _record_sync('device-to-host .to(cpu)')
            return self_.elem.to(**rest) if rest else self_.elem
        return func(*args, **kwargs)


class VEvent:
    """``torch.cuda.Event`` of the virtual device, with one stream's order:
    ``record`` takes the host time; ``synchronize`` waits for the device (a
    sync) and completes every event recorded before; ``query`` says whether
    an event completed (no sync); ``elapsed_time`` of an event not completed
    raises as CUDA's ``cudaErrorNotReady``."""

    recorded = 0  # events recorded so far (the stream's order)
    completed = 0  # events the host has waited for, in that order

    def __init__(self, enable_timing: bool = False, **kwargs):
        self.enable_timing = enable_timing
        self._time = None
        self._seq = None

    def record(self, stream=None) -> None:
        VEvent.recorded += 1
        self._time, self._seq = time.perf_counter(), VEvent.recorded

    def query(self) -> bool:
        return self._seq is not None and self._seq <= VEvent.completed

    def synchronize(self) -> None:
        _record_sync('torch.cuda.Event.synchronize()')
        VEvent.completed = max(VEvent.completed, self._seq or 0)

    def elapsed_time(self, end: 'VEvent') -> float:
        if not self.enable_timing or self._time is None or end._time is None:
            raise RuntimeError('elapsed_time of an event not recorded with timing')
        if not end.query():
            raise RuntimeError(
                'elapsed_time before the end event completed '
                '(cudaErrorNotReady): synchronize it first'
            )
        return (end._time - self._time) * 1e3


def _synchronize(*args, **kwargs) -> None:
    _record_sync('torch.cuda.synchronize()')
    VEvent.completed = VEvent.recorded


@contextlib.contextmanager
def virtual_cuda(strict: bool = True):
    """Run a block on the virtual device.

    ``torch.cuda.synchronize`` is counted instead of failing,
    ``torch.cuda.Event`` is :class:`VEvent`, and the CUDA generator state
    calls of ``torch.random.fork_rng`` are no-ops (there is no device).

    Args:
        strict (bool): See :class:`Recorder`. Defaults to True.

    Yields:
        Recorder: What the block did.
    """
    recorder = Recorder(strict)
    saved = dict(
        synchronize=torch.cuda.synchronize,
        Event=torch.cuda.Event,
        get_rng_state=torch.cuda.get_rng_state,
        set_rng_state=torch.cuda.set_rng_state,
    )
    torch.cuda.synchronize = _synchronize
    torch.cuda.Event = VEvent
    torch.cuda.get_rng_state = lambda *a, **k: torch.zeros(1, dtype=torch.uint8)
    torch.cuda.set_rng_state = lambda *a, **k: None
    previous, _RECORDER[0] = _RECORDER[0], recorder
    try:
        with _Mode():
            yield recorder
    finally:
        _RECORDER[0] = previous
        for name, value in saved.items():
            setattr(torch.cuda, name, value)


def to_vcuda(obj):
    """A module's parameters and buffers (in place), or a tensor, on the
    virtual device."""
    if isinstance(obj, torch.Tensor):
        return obj if _is_v(obj) else VCuda(obj.detach().clone())
    for m in obj.modules():
        for k, p in list(m._parameters.items()):
            if p is not None and not _is_v(p):
                m._parameters[k] = torch.nn.Parameter(VCuda(p.detach().clone()), p.requires_grad)
        for k, b in list(m._buffers.items()):
            if b is not None and not _is_v(b):
                m._buffers[k] = VCuda(b.detach().clone())
    return obj


def is_vcuda(t) -> bool:
    """Whether ``t`` is a tensor of the virtual device."""
    return _is_v(t)
