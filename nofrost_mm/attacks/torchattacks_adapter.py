"""Every torchattacks attack in the plug-in's ATTACKS registry.

``ATTACKS.build(dict(type='PGD', eps=8, alpha=2, steps=20))`` gives an object
called like the plug-in's own attacks, ``adv = attack(model, images, labels)``,
with ``images`` in [0, 1] and ``model`` a module taking such images (e.g.
:class:`NormalizedClassifier`). Each torchattacks class is registered under its
own name and takes its own keyword arguments; only the sizes are converted:
the keys in ``PIXEL_KWARGS`` are given in pixel units of 255 (``eps=8`` means
8/255), like the training attack, and divided by 255 for torchattacks.

``AutoAttack`` is not torchattacks' (whose members default to 10 iterations
and every other class as target): it is the plug-in's own implementation of
the reference's standard version, :class:`nofrost_mm.attacks.AutoAttack`.
"""

import ast
import importlib
import importlib.util
import inspect
import logging
from typing import List, Optional

import torch
import torch.nn as nn

from nofrost_mm.utils.log_once import LogOnce
from ..registry import ATTACKS
from .attack_context import model_state
from .mixed_precision import PrecisionSafeClassifier, autocast_dtype, autocast_off
from .pixel_size import check_pixel_size

# sizes in the [0, 1] input space of torchattacks, given here in pixel units
# (/255); L2 radii scale the same way (eps=127.5 is an L2 radius of 0.5)
PIXEL_KWARGS = ('eps', 'alpha', 'max_epsilon')
# wrappers that take other attacks or a training loader, not a model, and
# AutoAttack, which the plug-in implements itself (attacks/autoattack/)
NOT_ADAPTED = ('MultiAttack', 'LGV', 'AutoAttack')
# attacks without a ``norm`` argument that are not L-inf
L2_ATTACKS = ('PGDL2', 'PGDRSL2')
# norms the torchattacks classes with a ``norm`` argument implement (they
# would only fail, or silently do nothing, at the first batch)
NORMS = dict(FAB=('Linf', 'L2', 'L1'))
# run under fp16 / bf16 autocast (fp32 logits and safe gradients through a
# PrecisionSafeClassifier): fixed-budget steps whose result the caller
# decides in fp32 (tests/attacks/test_mixed_precision_strength.py). The
# others decide inside torchattacks (best iterate, early stop, minimum
# norm) on rounded logits: they run in fp32, with a log line.
AMP_SAFE = ('FGSM', 'PGD', 'PGDL2')
DEFAULT_NORMS = ('Linf', 'L2')


class _ProbeModel(nn.Module):
    """Stand-in model: lets a torchattacks class check its arguments early."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1)[:, :2] * self.weight


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands back a contiguous (NCHW) gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class _ContiguousInputs(nn.Module):
    """The model seen by torchattacks: plain NCHW inputs and input gradients.

    torchattacks reshapes images and their gradients with ``.view`` (FAB,
    Square), which fails on channels-last tensors; a channels-last model
    (``channels_last = True``) would return such gradients.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(_ContiguousGrad.apply(x.contiguous()))


def _torchattacks():
    """The torchattacks module, imported on first use.

    Importing it takes about 0.8 s (its TIFGSM imports scipy.stats), paid by
    every process that imports the plug-in: most never run a torchattacks
    attack (training, clean testing, the plug-in's own PGD).
    """
    return importlib.import_module('torchattacks')


def torchattacks_names() -> List[str]:
    """``torchattacks.__all__``, read from its source without importing it.

    Falls back to the import if ``__all__`` is not a literal list there.
    """
    spec = importlib.util.find_spec('torchattacks')
    if spec is None or not spec.origin:
        raise ImportError(
            'torchattacks is not installed (pip install torchattacks; '
            'see tools/misc/install_torchattacks.py)'
        )
    with open(spec.origin) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == '__all__' for t in node.targets
        ):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                break
    return list(_torchattacks().__all__)


class _TorchattacksClass:
    """``TorchAttack.attack_cls``: the class named ``attack_name``, looked up
    in torchattacks when first needed (building an adapter)."""

    def __get__(self, obj, owner):
        name = owner.attack_name
        return None if name is None else getattr(_torchattacks(), name)


class TorchAttack:
    """Base of the adapters: one torchattacks class, sizes in pixel units.

    Subclasses set ``attack_name``, the torchattacks class's name
    (``attack_cls`` is that class); one is registered per torchattacks attack
    (``PGD``, ``APGD``, ``FGSM``, ``Square``, ...; not ``AutoAttack``). Arguments
    are checked when the adapter is built (names against the torchattacks
    signature, eps range, torchattacks' own checks on a stand-in model), so a
    bad config fails before any checkpoint is loaded. The torchattacks object
    is created on the first call for the model it is given (and again if the
    model changes); attacks taking ``n_classes`` (APGDT, FAB) get
    the number of logits of the model unless it is set, and attacks taking a
    ``seed`` get 0 unless set. The train/eval mode of every submodule of the model is
    the same after the call as before it.

    Under autocast (``--amp``) the attacks of ``AMP_SAFE`` see the model
    through a :class:`PrecisionSafeClassifier` (fp32 logits, input gradients
    without fp16 underflow); the others run with autocast off, and say so
    once in the log.

    Args:
        **kwargs: The keyword arguments of the torchattacks class, with the
            keys in ``PIXEL_KWARGS`` in pixel units of 255.

    Example:
        >>> from nofrost_mm.registry import ATTACKS
        >>> attack = ATTACKS.build(dict(type='APGD', eps=8, steps=100))
        >>> adv = attack(normalized_classifier, images_0_1, labels)
    """

    attack_name: Optional[str] = None
    attack_cls = _TorchattacksClass()

    def __init__(self, **kwargs):
        name = self.attack_cls.__name__
        params = inspect.signature(self.attack_cls.__init__).parameters
        allowed = [p for p in params if p not in ('self', 'model')]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(
                f'attack {name}: unknown argument(s) {unknown}; '
                f'torchattacks.{name} accepts {allowed}'
            )
        defaults = {
            k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty
        }
        self.norm = kwargs.get('norm', defaults.get('norm', 'L2' if name in L2_ATTACKS else 'Linf'))
        if 'norm' in kwargs and kwargs['norm'] not in NORMS.get(name, DEFAULT_NORMS):
            raise ValueError(
                f'attack {name}: norm={kwargs["norm"]!r} is not one '
                f'of {NORMS.get(name, DEFAULT_NORMS)}'
            )
        # pixel units for reporting (defaults of torchattacks are in [0, 1])
        self.eps = kwargs.get('eps', kwargs.get('max_epsilon'))
        if self.eps is None:
            default_eps = defaults.get('eps', defaults.get('max_epsilon'))
            self.eps = None if default_eps is None else default_eps * 255
        self.steps = kwargs.get('steps', defaults.get('steps'))
        # the step size and restarts it runs with (attack_settings)
        self.step_size = (
            kwargs['alpha']
            if 'alpha' in kwargs
            else (None if defaults.get('alpha') is None else defaults['alpha'] * 255)
        )
        self.n_restarts = kwargs.get('n_restarts', defaults.get('n_restarts'))
        self.n_queries = kwargs.get('n_queries', defaults.get('n_queries'))
        for key in PIXEL_KWARGS:
            if key in kwargs:
                check_pixel_size(name, key, kwargs[key], self.norm)
        self.kwargs = dict(kwargs)
        self._ta_kwargs = {k: (v / 255.0 if k in PIXEL_KWARGS else v) for k, v in kwargs.items()}
        if 'seed' in params and 'seed' not in kwargs:
            self._ta_kwargs['seed'] = 0
        # torchattacks' own checks (e.g. FAB's norm)
        try:
            self._make(_ProbeModel(), num_classes=2)
        except (ValueError, AssertionError, TypeError) as e:
            raise ValueError(f'attack {name}{self.kwargs}: rejected by torchattacks: {e}') from e
        self._model: Optional[nn.Module] = None
        self._attack = None
        self._log_once = LogOnce(logging.INFO)

    @property
    def amp_safe(self) -> bool:
        """Whether it runs in reduced precision under autocast (``AMP_SAFE``)."""
        return self.attack_name in AMP_SAFE

    def _make(self, model: nn.Module, num_classes: int):
        kwargs = dict(self._ta_kwargs)
        params = inspect.signature(self.attack_cls.__init__).parameters
        if 'n_classes' in params:
            kwargs.setdefault('n_classes', num_classes)
        attack = self.attack_cls(model, **kwargs)
        return attack

    def __call__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        keys: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Attack ``images`` (N, C, H, W) in [0, 1]; returns detached images.

        ``keys`` (the plug-in attacks' per-sample random keys) are accepted
        and not used: torchattacks draws from torch's global generator.
        """
        if self._model is not model:
            with torch.no_grad():
                # the last dim: a net that squeezes its batch (mmpretrain's LeNet5)
                # gives a 1-d output for one image
                num_classes = model(images[:1]).shape[-1]
            # fp32 logits and safe gradients under autocast (without it, a
            # pass-through)
            self._attack = self._make(
                _ContiguousInputs(PrecisionSafeClassifier(model)), num_classes
            )
            self._model = model
        images = images.contiguous()
        device_type = images.device.type
        fp32 = autocast_dtype(device_type) is not None and not self.amp_safe
        if fp32:
            self._log_once(
                f'attack {self.attack_name}: runs in fp32 under autocast (it '
                'decides inside torchattacks on rounded logits; safe in '
                f'reduced precision: {", ".join(AMP_SAFE)})'
            )
        # torchattacks calls model.train() afterwards if the top module was
        # in train mode, which would switch a caller's eval-mode layers
        with model_state(model):
            if fp32:
                with autocast_off(device_type):
                    return self._attack(images, labels).detach()
            return self._attack(images, labels).detach()

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())
        return f'{type(self).__name__}({args})'


def _register_all():
    adapters = {}
    for name in torchattacks_names():
        if name in NOT_ADAPTED:
            continue
        cls = type(
            name,
            (TorchAttack,),
            dict(
                attack_name=name,
                __doc__=f'``torchattacks.{name}`` with sizes in pixel units of '
                '255 (see :class:`TorchAttack`).',
                __module__=__name__,
            ),
        )
        ATTACKS.register_module(name=name, module=cls)
        adapters[name] = cls
    return adapters


TORCHATTACKS_ADAPTERS = _register_all()
