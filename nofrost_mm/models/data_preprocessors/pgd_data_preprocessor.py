"""A data preprocessor that turns training batches into adversarial examples."""
import time
import weakref
from numbers import Number
from typing import Callable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from nofrost_mm.attacks import NormalizedClassifier, attack_context, build_attack
from nofrost_mm.attacks.mixed_precision import GradScaledClassifier, autocast_dtype


@MODELS.register_module()
class PGDDataPreprocessor(ClsDataPreprocessor):
    """Classification preprocessor that attacks each training batch (PGD-AT).

    Everything :class:`mmpretrain.models.ClsDataPreprocessor` does happens
    first (stacking, BGR->RGB, normalization, Mixup/CutMix). In training the
    normalized batch is then mapped back to [0, 1] pixel space, attacked there
    (so ``eps`` means the same whatever ``mean``/``std``; every pixel stays in
    the valid range) and normalized again. The attack targets the labels the
    head will see: integer labels, or the soft labels of batch augments
    (then soft-label cross entropy).

    The loss is ``(1 - w) * loss(clean) + w * loss(adv)`` with
    ``w = adv_loss_weight`` (``adv_loss='mix'``): w = 1 is Madry AT (pure
    adversarial loss; no clean forward pass is run), w = 0 is standard
    training and runs no attack. ``adv_loss='trades'`` is TRADES (Zhang et
    al. 2019): ``loss(clean) + trades_beta * KL(p(clean) || p(adv))`` with
    the batch-mean KL between the softmax outputs, adversarial examples
    maximising that KL (``attack=dict(type='PGDAttack', loss='kl',
    random_start='normal')``), and :class:`AdvImageClassifier` as the model.
    How the two halves reach the model:

    - ``adv_forward='separate'`` (default, as the official NoFrost code; it
      matters for BN models): two forward passes. Needs
      :class:`AdvImageClassifier` as ``model.type``.
    - ``adv_forward='concat'``: one forward pass over the concatenated batch,
      cheaper for normalizer-free models. Works with any mmpretrain
      classifier when w is 0.5 (the head's mean over the doubled batch) or 1;
      with ``AdvImageClassifier`` any w works.

    During the attack the classifier is in eval mode (or train mode with
    ``attack_model_mode='train'``), no parameter gradient is computed, BN
    running statistics are not updated, DDP is bypassed, and all of this is
    restored afterwards (:func:`nofrost_mm.attacks.attack_context`).

    The classifier to attack is given by :class:`AdversarialTrainingHook`
    (from the unwrapped model) and held through a weak reference: the
    preprocessor is the model's child, and a module attribute pointing back
    to the model would make ``train()`` and ``state_dict()`` recurse forever.

    Memory format and precision follow the model: when its conv weights are
    channels-last (the config key ``channels_last = True`` of
    :class:`NoFrostRunner`), the attack's images and every returned batch are
    channels-last too; under autocast (``--amp``: the optim wrapper's context
    covers the preprocessor in training) the attack's forward passes are
    bf16/fp16 with an fp32 attack loss, and under fp16 its input gradients are
    computed at a larger scale (:class:`GradScaledClassifier`, no underflow).

    At val/test time it is a plain ``ClsDataPreprocessor`` unless
    ``test_attack`` is set: then val/test batches are replaced by adversarial
    examples of that attack (robust accuracy with the usual evaluators).

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
        attack (dict | Callable): The training attack, a config for the
            ATTACKS registry or an attack object called as
            ``attack(model_fn, images_0_1, labels)``.
            Defaults to ``dict(type='PGDAttack', eps=8, steps=10)``.
        adv_loss_weight (float, optional): Weight w of the adversarial loss,
            in [0, 1], for ``adv_loss='mix'``; None means 0.5. TRADES has no
            such weight: leave it None there. Defaults to None.
        adv_loss (str): 'mix' (the weighted clean/adversarial loss above) or
            'trades'. Defaults to 'mix'.
        trades_beta (float): Weight of the KL term of TRADES (6.0 in Zhang
            et al. 2019); used with ``adv_loss='trades'``. Defaults to 6.0.
        adv_forward (str): 'separate' or 'concat', see above.
            Defaults to 'separate'.
        attack_model_mode (str): 'eval' or 'train': the mode of the model
            while the training attack runs. Defaults to 'eval'.
        test_attack (dict | Callable, optional): Attack applied to val/test
            batches. Defaults to None (clean evaluation).

    Example:
        >>> model = dict(
        ...     type='AdvImageClassifier',
        ...     data_preprocessor=dict(
        ...         type='PGDDataPreprocessor',
        ...         mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        ...         to_rgb=True, attack=dict(type='PGDAttack', eps=8, steps=10),
        ...         adv_loss_weight=0.5),
        ...     ...)
        >>> custom_hooks = [dict(type='AdversarialTrainingHook')]
    """

    ADV_FORWARDS = ('separate', 'concat')
    ADV_LOSSES = ('mix', 'trades')
    ATTACK_MODEL_MODES = ('eval', 'train')

    def __init__(self,
                 mean: Sequence[Number] = None,
                 std: Sequence[Number] = None,
                 pad_size_divisor: int = 1,
                 pad_value: Number = 0,
                 to_rgb: bool = False,
                 to_onehot: bool = False,
                 num_classes: Optional[int] = None,
                 batch_augments: Optional[dict] = None,
                 attack: Union[dict, Callable] = dict(type='PGDAttack', eps=8, steps=10),
                 adv_loss_weight: Optional[float] = None,
                 adv_forward: str = 'separate',
                 attack_model_mode: str = 'eval',
                 test_attack: Optional[Union[dict, Callable]] = None,
                 adv_loss: str = 'mix',
                 trades_beta: float = 6.0):
        # check everything before building anything: the runner builds the
        # model before it reads data
        if adv_loss not in self.ADV_LOSSES:
            raise ValueError(f'data_preprocessor.adv_loss must be one of '
                             f'{self.ADV_LOSSES}, got {adv_loss!r}')
        if adv_loss == 'trades':
            if adv_loss_weight is not None:
                raise ValueError(
                    "data_preprocessor.adv_loss_weight must be None with adv_loss="
                    "'trades' (TRADES weights its KL term with trades_beta), got "
                    f'{adv_loss_weight!r}')
            if (not isinstance(trades_beta, Number) or isinstance(trades_beta, bool)
                    or trades_beta < 0):
                raise ValueError('data_preprocessor.trades_beta must be a number >= 0 '
                                 f'(6.0 in the TRADES paper), got {trades_beta!r}')
            kl_attack = attack.get('loss') == 'kl' if isinstance(attack, dict) \
                else getattr(attack, 'loss', 'kl') == 'kl'
            if not kl_attack:
                raise ValueError(
                    "data_preprocessor.attack.loss must be 'kl' with adv_loss="
                    "'trades' (TRADES maximises the KL between clean and "
                    "adversarial predictions); add loss='kl', random_start='normal' "
                    'to the attack')
            # every batch is attacked; the mixing weight is not used
            adv_loss_weight = 1.
        elif adv_loss_weight is None:
            adv_loss_weight = 0.5
        if (not isinstance(adv_loss_weight, Number) or isinstance(adv_loss_weight, bool)
                or not 0 <= adv_loss_weight <= 1):
            raise ValueError('data_preprocessor.adv_loss_weight must be a number in '
                             f'[0, 1] (0: standard training, 1: Madry AT), got '
                             f'{adv_loss_weight!r}')
        if adv_forward not in self.ADV_FORWARDS:
            raise ValueError(f'data_preprocessor.adv_forward must be one of '
                             f'{self.ADV_FORWARDS}, got {adv_forward!r}')
        if attack_model_mode not in self.ATTACK_MODEL_MODES:
            raise ValueError(f'data_preprocessor.attack_model_mode must be one of '
                             f'{self.ATTACK_MODEL_MODES}, got {attack_model_mode!r}')
        if pad_size_divisor != 1:
            raise ValueError('data_preprocessor.pad_size_divisor must be 1 with '
                             'PGDDataPreprocessor (padding after normalization has no '
                             f'pixel-space equivalent), got {pad_size_divisor!r}')
        super().__init__(mean=mean, std=std, pad_size_divisor=pad_size_divisor,
                         pad_value=pad_value, to_rgb=to_rgb, to_onehot=to_onehot,
                         num_classes=num_classes, batch_augments=batch_augments)
        self.attack = self._build(attack, 'attack')
        self.test_attack = None if test_attack is None else self._build(
            test_attack, 'test_attack')
        self.adv_loss_weight = float(adv_loss_weight)
        self.adv_loss = adv_loss
        self.trades_beta = float(trades_beta)
        self.adv_forward = adv_forward
        self.attack_model_mode = attack_model_mode
        self.last_attack_time = 0.
        self._classifier_ref = None

    @staticmethod
    def _build(cfg, key):
        try:
            return build_attack(cfg)
        except (ValueError, TypeError, KeyError) as e:
            raise type(e)(f'data_preprocessor.{key}: {e}') from e

    # -- the classifier (given by AdversarialTrainingHook) --------------------
    def set_classifier(self, classifier: nn.Module) -> None:
        """Set the classifier to attack, and check it fits the settings.

        Args:
            classifier (nn.Module): The model owning this preprocessor; a
                wrapper (DDP...) is unwrapped.
        """
        if is_model_wrapper(classifier):
            classifier = classifier.module
        separate_capable = getattr(classifier, 'accepts_adv_inputs', False)
        if self.adv_loss == 'trades' and not separate_capable:
            raise ValueError(
                "data_preprocessor.adv_loss='trades' needs model.type="
                f"'AdvImageClassifier' (got {type(classifier).__name__}), which "
                'computes the KL between clean and adversarial predictions')
        if self.adv_loss_weight not in (0., 1.) and not separate_capable:
            name = type(classifier).__name__
            if self.adv_forward == 'separate':
                raise ValueError(
                    "data_preprocessor.adv_forward='separate' needs "
                    f"model.type='AdvImageClassifier' (got {name}), which runs "
                    "clean and adversarial batches in two forward passes; with "
                    f"{name} set data_preprocessor.adv_forward='concat'")
            if self.adv_loss_weight != 0.5:
                raise ValueError(
                    f'data_preprocessor.adv_loss_weight={self.adv_loss_weight} with '
                    f"{name} and adv_forward='concat' can only be 0, 0.5 or 1 (the "
                    "head averages over the doubled batch); use "
                    "model.type='AdvImageClassifier' for other weights")
        self._classifier_ref = weakref.ref(classifier)

    @property
    def classifier(self) -> nn.Module:
        """The classifier the attack targets (set by the hook)."""
        model = self._classifier_ref() if self._classifier_ref is not None else None
        if model is None:
            raise RuntimeError(
                'PGDDataPreprocessor has no classifier to attack: add '
                "custom_hooks = [dict(type='AdversarialTrainingHook')] to the config "
                '(or call data_preprocessor.set_classifier(model) yourself)')
        return model

    def __getstate__(self):
        # weak references do not pickle; the hook sets the classifier again
        state = self.__dict__.copy()
        state['_classifier_ref'] = None
        return state

    # -- attacking ------------------------------------------------------------
    def _normalizer(self, model: nn.Module) -> NormalizedClassifier:
        # inputs reaching the attack are already RGB: no flip here
        if self._enable_normalize:
            return NormalizedClassifier(model, self.mean.flatten(), self.std.flatten())
        return NormalizedClassifier(model)

    def _to_unit_range(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._enable_normalize:
            inputs = inputs * self.std + self.mean
        # the round trip may leave values a rounding error outside [0, 1]
        return (inputs / 255.).clamp_(0, 1)

    @staticmethod
    def attack_targets(data_samples: List[DataSample]) -> torch.Tensor:
        """Labels for the attack: soft scores (N, K) when present, else labels (N,)."""
        if 'gt_score' in data_samples[0]:
            return torch.stack([s.gt_score for s in data_samples])
        labels = [s.gt_label for s in data_samples]
        if any(label.numel() != 1 for label in labels):
            raise ValueError('PGDDataPreprocessor attacks single-label classification: '
                             'each sample needs exactly one gt_label')
        return torch.cat(labels)

    def attack_inputs(self,
                      inputs: torch.Tensor,
                      targets: torch.Tensor,
                      attack: Optional[Callable] = None,
                      train_mode: Optional[bool] = None) -> torch.Tensor:
        """Adversarial version of a preprocessed (normalized) batch.

        Args:
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
        memory_format = self._memory_format()
        images = self._to_unit_range(inputs.detach()).contiguous(
            memory_format=memory_format)
        with attack_context(self.classifier, train_mode=train_mode) as model:
            net = self._normalizer(model)
            model_fn = GradScaledClassifier(net) \
                if autocast_dtype(images.device.type) == torch.float16 else net
            adv = attack(model_fn, images, targets.to(inputs.device))
            return net.normalize(adv).to(inputs.dtype).contiguous(
                memory_format=memory_format)

    def _memory_format(self) -> torch.memory_format:
        """channels_last when the classifier's conv weights are, else contiguous."""
        model = self._classifier_ref() if self._classifier_ref is not None else None
        for p in (model.parameters() if model is not None else ()):
            # the first 4-d weight whose two layouts differ (not a 1x1 conv
            # of one input channel) decides
            if p.dim() == 4 and p.is_contiguous() != p.is_contiguous(
                    memory_format=torch.channels_last):
                return torch.contiguous_format if p.is_contiguous() \
                    else torch.channels_last
        return torch.contiguous_format

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess a batch; in training, add its adversarial version.

        Args:
            data (dict): Data sampled from the dataloader.
            training (bool): Whether it is a training batch.

        Returns:
            dict: ``inputs`` and ``data_samples`` as ClsDataPreprocessor
            returns them; in training also ``adv_inputs`` for
            ``AdvImageClassifier``, or the halves concatenated for other
            classifiers.
        """
        data = super().forward(data, training)
        memory_format = self._memory_format()
        if memory_format != torch.contiguous_format:
            data['inputs'] = data['inputs'].contiguous(memory_format=memory_format)
        if training:
            if self.adv_loss_weight == 0:
                return data
            return self._adversarial_batch(data)
        if self.test_attack is not None:
            data['inputs'] = self.attack_inputs(
                data['inputs'], self.attack_targets(data['data_samples']),
                self.test_attack, train_mode=False)
        return data

    def _adversarial_batch(self, data: dict) -> dict:
        inputs, samples = data['inputs'], data['data_samples']
        classifier = self.classifier
        _synchronize(inputs)
        start = time.perf_counter()
        adv = self.attack_inputs(inputs, self.attack_targets(samples))
        _synchronize(inputs)
        self.last_attack_time = time.perf_counter() - start
        if getattr(classifier, 'accepts_adv_inputs', False):
            return dict(inputs=inputs, data_samples=samples, adv_inputs=adv)
        if self.adv_loss_weight == 1:
            return dict(inputs=adv, data_samples=samples)
        # any classifier: the head's mean over the doubled batch is 0.5/0.5
        return dict(inputs=torch.cat([inputs, adv]), data_samples=samples + samples)


def _synchronize(tensor: torch.Tensor) -> None:
    # CUDA runs asynchronously: time the attack, not its launch
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)
