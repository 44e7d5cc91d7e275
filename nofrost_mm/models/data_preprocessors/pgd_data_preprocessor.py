"""A data preprocessor that crafts adversarial training batches."""

from numbers import Number
from typing import Callable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from nofrost_mm.attacks import NormalizedClassifier, attack_context, build_attack
from nofrost_mm.attacks.mixed_precision import (
    PrecisionSafeClassifier,
    autocast_off,
    precision_name,
    safe_precision,
)
from nofrost_mm.utils import DeviceTimer, LogOnce, check_choice, model_memory_format

# keys of earlier versions and where they live now: a config that still
# sets one fails with the new key's name instead of being silently ignored
MOVED_KEYS = dict(
    adv_loss='model.adv_loss',
    adv_loss_weight='model.adv_loss_weight',
    trades_beta='model.trades_beta',
    adv_forward='model.adv_forward',
    test_attack="AdversarialTrainingHook.val_attack (robust validation) or "
    'test_attacks (tools/test.py)',
    adv_batch="model.type='AdvImageClassifier', which owns the adversarial "
    "batch and loss: model.adv_loss_weight=0.5 with "
    "model.adv_forward='concat' for adv_batch='concat', "
    "model.adv_loss_weight=1.0 for adv_batch='adv'",
)


def check_moved_keys(where: str, kwargs: dict, moved: dict) -> None:
    """Raise naming the new home of every moved key in ``kwargs``."""
    for key in kwargs:
        if key in moved:
            raise ValueError(f'{where}.{key} moved to {moved[key]}')
    if kwargs:
        raise TypeError(f'{where}: unexpected keys {sorted(kwargs)}')


@MODELS.register_module()
class PGDDataPreprocessor(ClsDataPreprocessor):
    """Classification preprocessor that crafts adversarial training batches.

    Everything :class:`mmpretrain.models.ClsDataPreprocessor` does happens
    first (stacking, BGR->RGB, normalization, Mixup/CutMix). An adversarial
    batch is then crafted by :meth:`craft`: the normalized batch is mapped
    back to [0, 1] pixel space, attacked there (so ``eps`` means the same
    whatever ``mean``/``std``; every pixel stays in the valid range) and
    normalized again. The attack targets the labels the head will see:
    integer labels, or the soft labels of batch augments.

    The adversarial batch and loss have one owner,
    :class:`AdvImageClassifier`: its loss calls :meth:`craft` with itself
    (:meth:`forward` always returns the clean batch, as
    ``ClsDataPreprocessor``'s).

    The training eps has one owner, this preprocessor, and one writer:

    - ``data_preprocessor.eps`` is the configured eps, :attr:`train_eps`
      (when it is not set, the default eps of the attack's type, or the
      ``eps`` of an attack given as an object);
    - :meth:`schedule` is the only code that changes the training attack's
      eps and steps (:class:`AdversarialTrainingHook` calls it for the eps
      warm-up and the steps curriculum);
    - everything else reads them here: :attr:`eps` (the current, scheduled
      eps: GradAlign's noise) and :attr:`train_eps` (the robust validation
      attack and the catastrophic-overfitting guard follow it unless they
      name their own eps); :func:`nofrost_mm.utils.training_eps` reads the
      same keys from a config, for the test attacks.

    During the attack the classifier is in eval mode (or train mode with
    ``attack_model_mode='train'``), no parameter gradient is computed, BN
    running statistics are not updated, DDP is bypassed, and all of this is
    restored afterwards (:func:`nofrost_mm.attacks.attack_context`). Memory
    format follows the model's weights (:func:`model_memory_format`).

    Under autocast (``--amp``: the optim wrapper's context) an attack that is
    as strong in reduced precision as in fp32 (``amp_safe``: the plug-in's
    PGD family) runs in it through a :class:`PrecisionSafeClassifier`: fp16
    or bf16 forward passes, fp32 logits and loss, each sample's input
    gradient computed without fp16 underflow. Any other attack runs with
    autocast off, and so does a batch whose scaled fp16 gradient overflowed
    (it is attacked again); each case writes one log line. The precision of
    the last training attack is ``train_attack_precision`` (logged by
    :class:`AdversarialTrainingHook`). At val/test time it is a plain
    ``ClsDataPreprocessor``.

    Args:
        mean (Sequence[Number], optional): Pixel mean (0-255 scale) of the
            channels after the optional flip. Defaults to None.
        std (Sequence[Number], optional): Pixel std (0-255 scale).
            Defaults to None.
        pad_size_divisor (int): Must stay 1 (padding after normalization has
            no pixel-space equivalent). Defaults to 1.
        pad_value (Number): Padded value. Defaults to 0.
        to_rgb (bool): Convert BGR inputs to RGB. Defaults to False.
        to_onehot (bool): Generate one-hot labels. Defaults to False.
        num_classes (int, optional): Number of classes. Defaults to None.
        batch_augments (dict, optional): Mixup/CutMix settings, see
            :class:`mmpretrain.models.RandomBatchAugment`. Defaults to None.
        eps (float, optional): The training eps in pixel units of 255 (8 for
            8/255), given to the attack; None keeps the attack's own.
            Defaults to None.
        attack (dict | Callable, optional): The training attack, a config for
            the ATTACKS registry or an attack object called as
            ``attack(model_fn, images_0_1, labels)``; a config names no
            ``eps`` (the training eps is ``eps``). None means
            ``dict(type='PGDAttack', steps=10)`` at ``eps`` (8 when None).
            Defaults to None.
        attack_model_mode (str): 'eval' or 'train': the mode of the model
            while the training attack runs. Defaults to 'eval'.

    Example:
        >>> model = dict(
        ...     type='AdvImageClassifier', adv_loss_weight=0.5,
        ...     data_preprocessor=dict(
        ...         type='PGDDataPreprocessor',
        ...         mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        ...         to_rgb=True, eps=8, attack=dict(type='PGDAttack', steps=10)),
        ...     ...)
        >>> custom_hooks = [dict(type='AdversarialTrainingHook')]
    """

    ATTACK_MODEL_MODES = ('eval', 'train')
    MOVED_KEYS = MOVED_KEYS

    def __init__(
        self,
        mean: Sequence[Number] = None,
        std: Sequence[Number] = None,
        pad_size_divisor: int = 1,
        pad_value: Number = 0,
        to_rgb: bool = False,
        to_onehot: bool = False,
        num_classes: Optional[int] = None,
        batch_augments: Optional[dict] = None,
        attack: Optional[Union[dict, Callable]] = None,
        eps: Optional[float] = None,
        attack_model_mode: str = 'eval',
        **moved,
    ):
        # check everything before building anything: the runner builds the
        # model before it reads data
        check_moved_keys('data_preprocessor', moved, self.MOVED_KEYS)
        check_choice(
            'data_preprocessor.attack_model_mode', attack_model_mode, self.ATTACK_MODEL_MODES
        )
        if pad_size_divisor != 1:
            raise ValueError(
                'data_preprocessor.pad_size_divisor must be 1 with '
                'PGDDataPreprocessor (padding after normalization has no '
                f'pixel-space equivalent), got {pad_size_divisor!r}'
            )
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            to_rgb=to_rgb,
            to_onehot=to_onehot,
            num_classes=num_classes,
            batch_augments=batch_augments,
        )
        if isinstance(attack, dict) and 'eps' in attack:
            raise ValueError(
                'data_preprocessor.attack.eps moved to data_preprocessor.eps '
                '(the training eps, which the validation and test attacks follow)'
            )
        if attack is None:
            attack = dict(type='PGDAttack', steps=10, eps=8 if eps is None else eps)
        elif isinstance(attack, dict) and eps is not None:
            attack = dict(attack, eps=eps)
        try:
            self.attack = build_attack(attack)
        except (ValueError, TypeError, KeyError) as e:
            raise type(e)(f'data_preprocessor.attack: {e}') from e
        if eps is not None and not isinstance(attack, dict):
            self.attack.eps = eps
        self.attack_model_mode = attack_model_mode
        # the configured training budget; `schedule` scales from it
        self._train_eps = getattr(self.attack, 'eps', None)
        self._train_steps = getattr(self.attack, 'steps', None)
        # times the last training attack (read by the hook at log time)
        self.attack_timer: Optional[DeviceTimer] = None
        # fp32 fallbacks and fp16 overflows: said once, not every iteration
        self._log_once = LogOnce()
        # 'fp32', 'bf16', 'fp16': what the last (training) attack ran in
        self.last_attack_precision: Optional[str] = None
        self.train_attack_precision: Optional[str] = None

    # -- the training budget (scheduled by AdversarialTrainingHook) -----------
    def schedule(self, eps_scale: float = 1.0, steps: Optional[int] = None) -> None:
        """Set the training attack's budget for the next batches.

        The one writer of the training attack's ``eps`` and ``steps``
        (:class:`AdversarialTrainingHook` calls it every iteration).

        Args:
            eps_scale (float): Fraction of the configured training eps
                (:attr:`train_eps`), in [0, 1]. Defaults to 1.
            steps (int, optional): Attack steps; None keeps the configured
                ones. Defaults to None.
        """
        if eps_scale != 1.0 and self._train_eps is None:
            raise TypeError(
                f'the training attack {type(self.attack).__name__} has no eps to schedule'
            )
        if steps is not None and self._train_steps is None:
            raise TypeError(
                f'the training attack {type(self.attack).__name__} has no steps to schedule'
            )
        if self._train_eps is not None:
            self.attack.eps = self._train_eps * eps_scale
        if self._train_steps is not None:
            self.attack.steps = self._train_steps if steps is None else steps

    @property
    def train_eps(self) -> Optional[float]:
        """The configured training eps (pixel units of 255; None when the
        training attack has no eps), whatever the warm-up has reached."""
        return self._train_eps

    @property
    def eps(self) -> Optional[float]:
        """The training attack's current eps, as :meth:`schedule` set it
        (None when the attack has no eps)."""
        eps = getattr(self.attack, 'eps', None)
        return None if eps is None else float(eps)

    @property
    def last_attack_time(self) -> float:
        """Seconds of the last training attack (0 before the first); on
        CUDA, reading it waits for that attack: read it when logging."""
        return 0.0 if self.attack_timer is None else self.attack_timer.seconds

    @property
    def budget(self) -> dict:
        """The training attack's current :attr:`eps` and ``steps``, those it
        has (the values the hook logs)."""
        budget = dict(eps=self.eps, steps=getattr(self.attack, 'steps', None))
        return {k: float(v) for k, v in budget.items() if v is not None}

    # -- crafting --------------------------------------------------------------
    def to_unit_range(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalized (RGB) inputs back to [0, 1] pixels."""
        if self._enable_normalize:
            inputs = inputs * self.std + self.mean
        # the round trip may leave values a rounding error outside [0, 1]
        return (inputs / 255.0).clamp_(0, 1)

    def normalized_classifier(self, model: nn.Module) -> NormalizedClassifier:
        """``model`` as a function of [0, 1] images, for this preprocessor's outputs."""
        # inputs reaching the attack are already RGB: no flip here
        return NormalizedClassifier.from_preprocessor(model, self, flip=False)

    @staticmethod
    def attack_targets(data_samples: List[DataSample]) -> torch.Tensor:
        """Labels for the attack: soft scores (N, K) when present, else labels (N,)."""
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        labels = [s.gt_label for s in data_samples]
        if any(label.numel() != 1 for label in labels):
            raise ValueError(
                'PGDDataPreprocessor attacks single-label classification: '
                'each sample needs exactly one gt_label'
            )
        return torch.cat(labels)

    def attack_inputs(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        attack: Optional[Callable] = None,
        train_mode: Optional[bool] = None,
    ) -> torch.Tensor:
        """Adversarial version of a preprocessed (normalized) batch.

        Args:
            model (nn.Module): The (unwrapped) classifier to attack.
            inputs (torch.Tensor): Output ``inputs`` of this preprocessor.
            targets (torch.Tensor): Labels (N,) or soft labels (N, K).
            attack (Callable, optional): Attack to run; defaults to the
                training attack.
            train_mode (bool, optional): Attack the model in train mode;
                defaults to ``attack_model_mode == 'train'``.

        Returns:
            torch.Tensor: The adversarial batch, normalized like ``inputs``.
        """
        attack = self.attack if attack is None else attack
        if train_mode is None:
            train_mode = self.attack_model_mode == 'train'
        memory_format = model_memory_format(model)
        images = self.to_unit_range(inputs.detach()).contiguous(memory_format=memory_format)
        with attack_context(model, train_mode=train_mode) as model:
            net = self.normalized_classifier(model)
            adv = self._attack_in_safe_precision(attack, net, images, targets.to(inputs.device))
            return net.normalize(adv).to(inputs.dtype).contiguous(memory_format=memory_format)

    def _attack_in_safe_precision(
        self, attack: Callable, net: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """``attack(net, images, targets)`` in the autocast precision where it
        is as strong as in fp32, else in fp32 (logged); sets
        ``last_attack_precision``."""
        device_type = images.device.type
        precision = safe_precision(attack, device_type, self._log_once)
        reduced = precision_name(device_type)
        if precision == 'fp32':
            with autocast_off(device_type):
                adv = attack(net, images, targets)
        else:
            safe = PrecisionSafeClassifier(net)
            adv = attack(safe, images, targets)
            # bf16 has fp32's range; an fp16 overflow left rows unmoved for a
            # step: one sync per attack call reads the count
            if reduced == 'fp16' and safe.overflows.count:
                self._log_once(
                    f'{type(attack).__name__}: a scaled input gradient '
                    'overflowed in fp16; such batches are attacked again '
                    'in fp32'
                )
                precision = 'fp32'
                with autocast_off(device_type):
                    adv = attack(net, images, targets)
        self.last_attack_precision = precision
        return adv

    def craft(
        self, model: nn.Module, inputs: torch.Tensor, data_samples: List[DataSample]
    ) -> torch.Tensor:
        """The adversarial training batch of ``inputs`` under the training attack.

        Args:
            model (nn.Module): The (unwrapped) classifier to attack.
            inputs (torch.Tensor): Output ``inputs`` of this preprocessor.
            data_samples (List[DataSample]): Their annotations.

        Returns:
            torch.Tensor: The adversarial batch; the attack is timed by
            ``attack_timer`` (CUDA events on a GPU: nothing waits for the
            device here; the hook reads it when it logs).
        """
        self.attack_timer = DeviceTimer(inputs.device).start()
        adv = self.attack_inputs(model, inputs, self.attack_targets(data_samples))
        self.attack_timer.stop()
        self.train_attack_precision = self.last_attack_precision
        return adv
