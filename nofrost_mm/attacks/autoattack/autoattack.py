"""Standard AutoAttack (Croce & Hein, ICML 2020), L-inf: the reference's members and cascade.

APGD-CE, APGD-T (9 targets), FAB-T (9 targets), each 100 iterations, then
Square with 5000 queries, every member on the samples the earlier ones left
correct, with the settings of fra31/auto-attack's ``version='standard'``
(``STANDARD`` lists them). One clean forward pass decides the correct
samples and the target classes; members run their targets as one batch
(:class:`APGDAttack`, :class:`FABAttack`; ``target_batch`` rows at a time)
and Square vectorised (:class:`SquareAttack`), in the model's memory format,
on the model with its eval BatchNorms folded into the convs before them
(:func:`fold_batch_norm`).
"""

from typing import Optional, Union

import torch

from nofrost_mm.registry import ATTACKS
from nofrost_mm.utils.memory_format import model_memory_format
from nofrost_mm.utils.progress import NO_PROGRESS, ProgressReporter
from ..attack_context import model_state
from ..mixed_precision import PrecisionSafeClassifier, autocast_dtype, autocast_off, fp32_logits
from ..survivors import survivor_rows
from .apgd import APGDAttack
from .autoattack_member import check_common, check_images, default_keys, like
from .batch_norm_folding import fold_batch_norm
from .fab import FABAttack
from .square import SquareAttack

# fra31/auto-attack, autoattack.py, _set_version('standard') for L-inf
STANDARD = dict(
    apgd_ce=dict(steps=100, n_restarts=1, loss='ce', rho=0.75),
    apgd_t=dict(steps=100, n_restarts=1, loss='dlr-targeted', n_target_classes=9, rho=0.75),
    fab_t=dict(steps=100, n_target_classes=9, alpha_max=0.1, eta=1.05, beta=0.9),
    square=dict(n_queries=5000, p_init=0.8, rescale_schedule=False),
)
VERSIONS = ('standard',)


@ATTACKS.register_module()
class AutoAttack:
    """Standard AutoAttack with the reference's settings, members batched.

    Called as ``adv = attack(model, images, labels, keys=None,
    progress=NO_PROGRESS)`` with images in [0, 1] and ``model`` a module
    taking them (e.g.
    :class:`NormalizedClassifier`); returns detached images, the first
    member's adversarial image for each sample it broke and the clean image
    for the others, in the layout of ``images``. The attack runs its images
    in the model's layout (channels-last when its conv weights are). Random
    starts and squares come from per-sample ``keys``
    (:mod:`nofrost_mm.utils.sample_random`); without keys they are drawn
    from ``seed``, so a call repeats. The model is put in eval mode for the
    attack and every submodule's train/eval flag is restored afterwards.
    Under autocast the members run through a :class:`PrecisionSafeClassifier`
    (fp32 logits and losses, input gradients without fp16 underflow), the
    clean decision and every decision that ends a sample's attack in fp32;
    FAB-T runs in fp32, and under bf16 APGD and Square too (``fp32_parts``).
    A :class:`ProgressReporter` given as ``progress`` gets each member's
    progress (steps, targets, samples broken and still robust, elapsed time
    and ETA) and a line at each member's end; it changes no result.

    Args:
        eps (float): L-inf radius in pixel units of 255 (8 = 8/255).
            Defaults to 8.
        norm (str): 'Linf'; the plug-in's members implement no other norm
            (L2 raises). Defaults to 'Linf'.
        version (str): 'standard' (the reference's standard evaluation).
            Defaults to 'standard'.
        n_classes (int, optional): Number of classes; None takes the
            model's number of logits, a different one raises.
            Defaults to None.
        seed (int): Seed of the random numbers when the call gives no
            ``keys``. Defaults to 0.
        target_batch (int | str, optional): At most this many images per
            pass of APGD-T and FAB-T (their rows are survivors x targets),
            and per slice of FAB's projection onto the boundary: the one
            setting that bounds their memory, whatever the number of
            survivors, without changing which samples break. 'auto': rows
            of at most 2**25 input elements (222 images at 224 px, so an
            NF-ResNet-50 stays within an 80 GB GPU; every target of a CIFAR
            batch of up to 1213 survivors in one pass); None runs all
            targets at once. Defaults to 'auto'.
        fold_batch_norm (bool): Attack a copy of the model whose eval-mode
            BatchNorms that read a conv's output are folded into that conv:
            the same function up to float rounding (checked on the clean
            logits; the model is used as it is otherwise), one pass less per
            normalisation. False attacks the model's own layers.
            Defaults to True.
        verbose (bool): Print the robust accuracy after each member.
            Defaults to False.

    Example:
        >>> attack = ATTACKS.build(dict(type='AutoAttack', eps=8))
        >>> adv = attack(normalized_classifier, images_0_1, labels, keys=keys)
    """

    # as strong under fp16 / bf16 autocast as in fp32 (mixed_precision.py),
    # FAB-T in fp32, and under bf16 every member
    amp_safe = True
    fp32_parts = dict(fp16=('fab-t',), bf16=('apgd-ce', 'apgd-t', 'fab-t', 'square'))

    def __init__(
        self,
        eps: float = 8.0,
        norm: str = 'Linf',
        version: str = 'standard',
        n_classes: Optional[int] = None,
        seed: int = 0,
        target_batch: Union[int, str, None] = 'auto',
        fold_batch_norm: bool = True,
        verbose: bool = False,
    ):
        check_common('AutoAttack', eps, norm, seed)
        if version not in VERSIONS:
            raise ValueError(f'attack AutoAttack: version={version!r} is not one of {VERSIONS}')
        if n_classes is not None and (
            not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 2
        ):
            raise ValueError(
                f'attack AutoAttack: n_classes={n_classes!r} must be '
                'None (the number of logits) or an int >= 2'
            )
        self.eps, self.norm, self.version = eps, norm, version
        if not isinstance(fold_batch_norm, bool):
            raise ValueError(
                f'attack AutoAttack: fold_batch_norm must be True or False, not {fold_batch_norm!r}'
            )
        self.n_classes, self.seed, self.verbose = n_classes, seed, verbose
        self.fold_batch_norm = fold_batch_norm
        self.steps = STANDARD['apgd_ce']['steps']
        settings = STANDARD
        self.members = [
            ('apgd-ce', APGDAttack(eps=eps, seed=seed, **settings['apgd_ce'])),
            (
                'apgd-t',
                APGDAttack(eps=eps, seed=seed, target_batch=target_batch, **settings['apgd_t']),
            ),
            (
                'fab-t',
                FABAttack(eps=eps, seed=seed, target_batch=target_batch, **settings['fab_t']),
            ),
            ('square', SquareAttack(eps=eps, seed=seed, **settings['square'])),
        ]

    def __repr__(self):
        return (
            f'AutoAttack(eps={self.eps}, norm={self.norm!r}, version='
            f'{self.version!r}, seed={self.seed})'
        )

    def __call__(
        self,
        model,
        images: torch.Tensor,
        labels: torch.Tensor,
        keys: Optional[torch.Tensor] = None,
        progress: ProgressReporter = NO_PROGRESS,
    ) -> torch.Tensor:
        """Attack ``images`` (N, C, H, W) in [0, 1]; returns detached images."""
        check_images('AutoAttack', images, labels)
        if images.min() < 0 or images.max() > 1:
            raise ValueError('AutoAttack: images must lie in [0, 1]')
        keys = default_keys(keys, len(images), self.seed, images.device)
        given = images
        images, labels = images.detach(), labels.detach()
        # a precision-safe wrapper's model is folded, then wrapped again
        safe = model if isinstance(model, PrecisionSafeClassifier) else None
        if safe is not None:
            model = safe.model_fn
        # every attack image in the model's layout: no conversion per conv
        images = images.contiguous(memory_format=model_memory_format(model))
        with model_state(model, train_mode=False):
            logits = fp32_logits(model, images)
            if self.n_classes is not None and logits.size(1) != self.n_classes:
                raise ValueError(
                    f'AutoAttack: n_classes={self.n_classes} but the '
                    f'model returns {logits.size(1)} logits'
                )
            attacked = model
            if self.fold_batch_norm:
                with autocast_off(images.device.type):  # checked on fp32 logits
                    attacked, folded = fold_batch_norm(model, images, logits)
                if self.verbose:
                    print(f'AutoAttack: {folded} BatchNorm layers folded into convs')
            if autocast_dtype(images.device.type) is not None:
                # one overflow count with the caller's wrapper, if any
                attacked = (
                    safe.with_model(attacked)
                    if safe is not None
                    else PrecisionSafeClassifier(attacked)
                )
            return like(self.run(attacked, images, labels, keys, logits, progress)[0], given)

    def run(
        self, model, images, labels, keys, clean_logits, progress: ProgressReporter = NO_PROGRESS
    ):
        """The cascade; ``(adv, robust)`` with ``robust`` per sample.

        Args:
            clean_logits (Tensor): The model's logits on ``images``.
            progress (ProgressReporter): Gets the members' lines.
        """
        adv = images.clone()
        robust = clean_logits.argmax(1) == labels
        for name, member in self.members:
            todo = survivor_rows(robust)
            if not len(todo):
                break
            # members draw from their own streams of the sample's key
            got_adv, broken = member.perturb(
                model, images[todo], labels[todo], keys[todo], clean_logits[todo], progress=progress
            )
            robust[todo[broken]] = False
            adv[todo[broken]] = got_adv[broken]
            if self.verbose:
                print(
                    f'AutoAttack: robust accuracy after {name}: {robust.float().mean().item():.2%}'
                )
        return adv, robust
