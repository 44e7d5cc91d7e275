"""ImageClassifier that takes clean and adversarial batches: mixed PGD-AT,
pure AT, TRADES, adversarial weight perturbation (AWP) and GradAlign."""

from numbers import Number
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.func import functional_call

from nofrost_mm.attacks import model_state
from nofrost_mm.attacks.mixed_precision import LOGIT_GRAD_EXP, autocast_off, precision_name
from nofrost_mm.utils import LogOnce, model_memory_format
from ..data_preprocessors import PGDDataPreprocessor
from ..layers import dual_bn_route


@MODELS.register_module()
class AdvImageClassifier(ImageClassifier):
    """Image classifier for adversarial training.

    It owns the adversarial batch and the adversarial training loss: its
    loss asks its :class:`PGDDataPreprocessor` for the batch
    (``craft(self, ...)``, under the training attack at the preprocessor's
    current eps); the preprocessor's ``forward`` returns the clean batch.
    With ``adv_loss='mix'`` the
    loss is ``(1 - w) * loss(clean) + w * loss(adv)`` for every term the head
    returns, with ``w = adv_loss_weight``; w = 1 (pure adversarial training,
    Madry et al. 2018) runs no clean forward pass, w = 0 is standard
    training and runs no attack. With 'trades' (Zhang et al. 2019) it is
    ``loss_ce = loss(clean)`` plus ``loss_kl = beta * KL(p(clean) || p(adv))`` (batch
    mean of the KL between softmax outputs; gradients flow through both, as
    in TRADES's code), ``beta = trades_beta``, with adversarial examples
    maximising that KL (``attack=dict(type='PGDAttack', loss='kl',
    random_start='normal')``). With ``adv_forward='separate'`` the halves go
    through the network in two forward passes (BN statistics of each pass
    are its own, as in the official NoFrost code); with 'concat' in one pass
    over the concatenated batch, split after the head (cheaper for
    normalizer-free models). Outside training losses (val, test) it is an
    ``ImageClassifier``; inputs take the weights' memory format
    (:func:`model_memory_format`).

    Adversarial weight perturbation (Wu et al. 2020), on when ``awp_gamma >
    0``: the gradient g of the training loss above at the weights w (an extra
    forward/backward pass in train mode that leaves BN running statistics
    untouched) gives, for every weight tensor of 2 or more dimensions whose
    name contains 'weight' (conv and linear weights, as in the AWP code),
    ``v = awp_gamma * ||w|| * g / ||g||``; the returned loss is computed at
    ``w + v`` through ``torch.func.functional_call``. The parameters are never
    modified, so their gradient is the gradient at the perturbed weights
    and the optimizer steps from the unperturbed ones (AWP's "perturb,
    compute, restore, step" without an in-place restore). It is stateless
    across iterations (exact resume needs nothing more) and works under DDP:
    the extra pass runs on this (unwrapped) module with
    ``torch.autograd.grad``, which neither fills ``.grad`` nor triggers
    DDP's synchronisation, while the returned loss goes through DDP's
    backward as usual. Each rank perturbs with its own batch.
    :class:`AdversarialTrainingHook` can delay it (``awp_warmup``). Under
    fp16 autocast (``--amp``) g is computed with the logits' gradient
    scaled, in fp32 and before the network's cast, by one power of two for
    the batch (so a batch of confident samples does not underflow to g = 0)
    and divided back in fp32; if the scaled gradient overflows, g is
    computed again in fp32 (logged once). Under bf16 g is computed in fp32
    (logged once).

    GradAlign (Andriushchenko & Flammarion 2020), on when
    ``grad_align_lambda > 0``, adds ``loss_grad_align = lambda * mean_i(1 -
    cos(g_i(x), g_i(x + eta)))`` with ``g(x)`` the input gradient of the
    cross entropy in [0, 1] pixel space, ``eta ~ U(-eps, eps)`` (eps of the
    training attack, so it follows eps warm-up; ``x + eta`` clipped to
    [0, 1]). The first gradient is detached, the second is taken with
    ``create_graph=True`` (double backprop), as in the official code. The
    cosine does not depend on a sample's scale: each sample's cross entropy
    (computed in float64, so a softmax saturated by hundreds of nats still
    has a gradient) is multiplied by the power of two that brings its
    logits' gradient near 16, and the rows are divided by their largest
    entry before the norms (a confident sample's gradient underflowed in
    fp16, and in fp32 its tiny norm gave NaN weight gradients). Samples
    whose gradient is zero (below 2**-60 after the scaling) are left out of
    the mean (the official code's rule), counted in ``grad_align_dropped``.
    If a scaled fp16 gradient overflows, both are computed again in fp32
    (logged once). Both passes run in the
    attack's model mode (``data_preprocessor.attack_model_mode``: eval by
    default, the function the attack linearises; in train mode BN uses batch
    statistics and its running statistics are left unchanged) and at the
    AWP-perturbed weights when AWP is on. Pair it with a single-step attack
    from the clean image (``dict(type='FGSMRS', random_start=False,
    step_ratio=1.)``, the paper's FGSM); lambda 0.2 at 8/255, 2.0 at
    16/255 in the paper. It costs about two more training passes.

    After each adversarial loss it keeps ``adv_log_vars``: loss_clean,
    loss_adv (unweighted sums of the head's loss terms; with TRADES loss_adv
    is computed without gradient, for the log), trades_kl (the unweighted
    KL), acc_clean, acc_adv (top-1 %, from the same logits), with GradAlign
    grad_align_cos and grad_align_dropped (samples left out), which
    :class:`AdversarialTrainingHook` logs. Pure AT logs no clean terms.

    Args:
        adv_loss (str): 'mix' or 'trades'. Defaults to 'mix'.
        adv_loss_weight (float, optional): Weight w of the adversarial loss,
            in [0, 1], for ``adv_loss='mix'``; None means 0.5. TRADES has no
            such weight: leave it None there. Defaults to None.
        trades_beta (float): Weight of the KL term of TRADES (6.0 in Zhang
            et al. 2019); used with ``adv_loss='trades'``. Defaults to 6.0.
        adv_forward (str): 'separate' or 'concat', see above.
            Defaults to 'separate'.
        awp_gamma (float): Layer-wise relative size of the adversarial
            weight perturbation; 0 turns AWP off (5e-3 for TRADES-AWP, 1e-2
            for AT-AWP in Wu et al. 2020). Defaults to 0.
        grad_align_lambda (float): Weight of the GradAlign term; 0 turns it
            off. Defaults to 0.
        *args, **kwargs: As :class:`mmpretrain.models.ImageClassifier`; set
            ``data_preprocessor.type='PGDDataPreprocessor'``. The head must
            be a ``ClsHead`` (its ``_get_loss`` turns logits into losses).

    Example:
        >>> model = dict(type='AdvImageClassifier',
        ...              backbone=dict(type='ResNet_CIFAR', depth=18),
        ...              neck=dict(type='GlobalAveragePooling'),
        ...              head=dict(type='LinearClsHead', num_classes=10,
        ...                        in_channels=512),
        ...              data_preprocessor=dict(type='PGDDataPreprocessor'),
        ...              adv_loss_weight=0.5, awp_gamma=0.01)
    """

    # Wu et al.'s AWP code divides by ||g|| + 1e-20
    AWP_EPS = 1e-20
    ADV_FORWARDS = ('separate', 'concat')
    ADV_LOSSES = ('mix', 'trades')

    def __init__(
        self,
        *args,
        adv_loss: str = 'mix',
        adv_loss_weight: Optional[float] = None,
        trades_beta: float = 6.0,
        adv_forward: str = 'separate',
        awp_gamma: float = 0.0,
        grad_align_lambda: float = 0.0,
        **kwargs,
    ):
        adv_loss_weight = _check_recipe(adv_loss, adv_loss_weight, trades_beta, adv_forward)
        if not isinstance(awp_gamma, (int, float)) or isinstance(awp_gamma, bool) or awp_gamma < 0:
            raise ValueError(
                'model.awp_gamma must be a number >= 0 (0: no adversarial '
                'weight perturbation; 5e-3 TRADES-AWP, 1e-2 AT-AWP), '
                f'got {awp_gamma!r}'
            )
        if (
            not isinstance(grad_align_lambda, (int, float))
            or isinstance(grad_align_lambda, bool)
            or grad_align_lambda < 0
        ):
            raise ValueError(
                'model.grad_align_lambda must be a number >= 0 (0: no '
                'GradAlign; 0.2 at eps 8/255, 2.0 at 16/255 in the '
                f'paper), got {grad_align_lambda!r}'
            )
        super().__init__(*args, **kwargs)
        # fp32 fallbacks and fp16 overflows: said once, not every iteration
        self._log_once = LogOnce()
        # with a plain ClsDataPreprocessor it is an ImageClassifier (nothing
        # crafts adversarial batches)
        self.crafts = isinstance(self.data_preprocessor, PGDDataPreprocessor)
        if (
            adv_loss == 'trades'
            and self.crafts
            and getattr(self.data_preprocessor.attack, 'loss', 'kl') != 'kl'
        ):
            raise ValueError(
                "data_preprocessor.attack.loss must be 'kl' with model.adv_loss="
                "'trades' (TRADES maximises the KL between clean and "
                "adversarial predictions); add loss='kl', random_start='normal' "
                'to the attack'
            )
        self.adv_loss = adv_loss
        self.adv_loss_weight = adv_loss_weight
        self.trades_beta = float(trades_beta)
        self.adv_forward = adv_forward
        if not hasattr(self.head, '_get_loss'):
            raise TypeError(
                f'AdvImageClassifier needs a ClsHead-style head with '
                f'_get_loss(cls_score, data_samples); got '
                f'{type(self.head).__name__}'
            )
        self.awp_gamma = float(awp_gamma)
        self.grad_align_lambda = float(grad_align_lambda)
        # AdversarialTrainingHook turns AWP off during its warm-up
        self.awp_enabled = True
        self.adv_log_vars: Dict[str, torch.Tensor] = {}

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[DataSample]] = None,
        mode: str = 'tensor',
        adv_inputs: Optional[torch.Tensor] = None,
    ):
        """ImageClassifier's forward; in 'loss' mode the adversarial loss.

        Args:
            inputs (torch.Tensor): The (clean) batch.
            data_samples (List[DataSample], optional): Annotations.
            mode (str): 'tensor', 'predict' or 'loss'. Defaults to 'tensor'.
            adv_inputs (torch.Tensor, optional): Adversarial version of
                ``inputs`` (same labels); None crafts it with the
                preprocessor's training attack. Defaults to None.
        """
        inputs = inputs.contiguous(memory_format=model_memory_format(self))
        if mode != 'loss' or (
            adv_inputs is None and (self.adv_loss_weight == 0 or not self.crafts)
        ):
            if adv_inputs is not None:
                raise RuntimeError(f'adv_inputs are only used in "loss" mode, got "{mode}"')
            return super().forward(inputs, data_samples, mode)
        if adv_inputs is None:
            # dual BN: the attack runs through the adversarial branch
            with dual_bn_route(self, 'adv'):
                adv_inputs = self.data_preprocessor.craft(self, inputs, data_samples)
        return self.adversarial_loss(inputs, adv_inputs, data_samples)

    def adversarial_loss(
        self, inputs: torch.Tensor, adv_inputs: torch.Tensor, data_samples: List[DataSample]
    ) -> Dict[str, torch.Tensor]:
        """The adversarial training loss, at AWP-perturbed weights if enabled.

        Args:
            inputs (torch.Tensor): The clean batch.
            adv_inputs (torch.Tensor): The adversarial batch.
            data_samples (List[DataSample]): Annotations of both.

        Returns:
            dict[str, Tensor]: The loss terms (mixed head terms, or the
            head's terms on the clean batch plus ``loss_kl`` for TRADES).
        """
        params = None
        if self.awp_gamma > 0 and self.awp_enabled:
            params = {
                name: p + v
                for name, p, v in self.awp_perturbation(inputs, adv_inputs, data_samples)
            }
        losses, self.adv_log_vars = self._training_losses(inputs, adv_inputs, data_samples, params)
        if self.grad_align_lambda > 0:
            reg, cos, dropped = self.grad_align(inputs, data_samples, params)
            losses['loss_grad_align'] = self.grad_align_lambda * reg
            self.adv_log_vars['grad_align_cos'] = cos
            self.adv_log_vars['grad_align_dropped'] = dropped
        return losses

    def grad_align(
        self, inputs: torch.Tensor, data_samples: List[DataSample], params: Optional[dict] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GradAlign's ``mean(1 - cos)`` of clean and noisy input gradients.

        Args:
            inputs (torch.Tensor): The clean (normalized) batch.
            data_samples (List[DataSample]): Its annotations.
            params (dict, optional): Parameters overriding the module's (AWP).

        Returns:
            tuple[Tensor, Tensor, Tensor]: The regulariser (differentiable
            with respect to the weights), the detached mean cosine and the
            number of samples left out (a zero gradient), a float tensor.
        """
        pre = self.data_preprocessor
        images = pre.to_unit_range(inputs.detach())
        targets = pre.attack_targets(data_samples).to(inputs.device)
        normalize = pre.normalized_classifier(self).normalize
        eps = (pre.eps or 0) / 255.0
        # BN running statistics untouched in train mode, not written back
        # (the passes' graphs stay alive until the training backward)
        train_mode = pre.attack_model_mode == 'train'
        with (
            model_state(
                self, train_mode=train_mode, running_stats='unchanged' if train_mode else None
            ),
            dual_bn_route(self, 'adv'),
        ):
            eta = torch.empty_like(images).uniform_(-eps, eps)
            clean, noisy = self._grad_align_grads(
                _ImageLogits(self, normalize, params), images, (images + eta).clamp_(0, 1), targets
            )
        clean, noisy = clean.flatten(1), noisy.flatten(1)
        # the official code drops samples with a zero gradient (the norm's
        # gradient is undefined there): select before taking norms
        keep = (clean.detach().abs().amax(dim=1) >= GRAD_ALIGN_MIN_PEAK) & (
            noisy.detach().abs().amax(dim=1) >= GRAD_ALIGN_MIN_PEAK
        )
        dropped = (~keep).sum().float()
        # rows divided by their largest entry (constants for the cosine):
        # their squared norms neither underflow nor overflow
        clean, noisy = _peak_normalized(clean), _peak_normalized(noisy)
        if not keep.any():
            zero = noisy.sum() * 0.0
            return zero, zero.detach() + 1.0, dropped
        clean, noisy = clean[keep], noisy[keep]
        cos = (clean * noisy).sum(dim=1) / (clean.norm(dim=1) * noisy.norm(dim=1))
        return 1.0 - cos.mean(), cos.mean().detach(), dropped

    def _grad_align_grads(
        self,
        logits_fn: Callable,
        images: torch.Tensor,
        noisy_images: torch.Tensor,
        targets: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """GradAlign's clean (detached) and noisy (double-backprop) input
        gradients, without fp16 underflow; in fp32 after an fp16 overflow."""
        # train-mode BatchNorm couples the rows: one scale for the batch
        per_sample = self.data_preprocessor.attack_model_mode != 'train'
        clean = _scaled_input_grad(logits_fn, images, targets, False, per_sample)
        noisy = _scaled_input_grad(logits_fn, noisy_images, targets, True, per_sample)
        device_type = images.device.type
        # bf16 has fp32's range; under fp16 one sync per iteration reads
        # whether a scaled gradient overflowed
        if precision_name(device_type) == 'fp16' and not bool(
            torch.isfinite(clean).all() & torch.isfinite(noisy).all()
        ):
            self._log_once(
                'GradAlign: a scaled input gradient overflowed in fp16; '
                'such batches take both gradients again in fp32'
            )
            with autocast_off(device_type):
                clean = _scaled_input_grad(logits_fn, images, targets, False, per_sample)
                noisy = _scaled_input_grad(logits_fn, noisy_images, targets, True, per_sample)
        return clean, noisy

    def awp_perturbation(
        self, inputs: torch.Tensor, adv_inputs: torch.Tensor, data_samples: List[DataSample]
    ) -> List[Tuple[str, torch.nn.Parameter, torch.Tensor]]:
        """AWP's weight perturbation for this batch (Wu et al. 2020).

        Args:
            inputs (torch.Tensor): The clean batch.
            adv_inputs (torch.Tensor): The adversarial batch.
            data_samples (List[DataSample]): Annotations of both.

        Returns:
            list[tuple[str, Parameter, Tensor]]: (name, parameter, detached
            perturbation ``awp_gamma * ||w|| * g / (||g|| + 1e-20)``) for
            every perturbed weight.
        """
        named = [
            (n, p)
            for n, p in self.named_parameters()
            if p.requires_grad and p.dim() > 1 and 'weight' in n
        ]
        # the extra pass must not count in the BN running statistics (BN's
        # backward reads them: restore only after it)
        with model_state(self, running_stats='restore'):
            grads = self._awp_grads(inputs, adv_inputs, data_samples, [p for _, p in named])
        out = []
        for (name, p), g in zip(named, grads):
            if g is not None:
                scale = self.awp_gamma * p.detach().norm() / (g.norm() + self.AWP_EPS)
                out.append((name, p, (scale * g).detach()))
        return out

    def _awp_grads(
        self,
        inputs: torch.Tensor,
        adv_inputs: torch.Tensor,
        data_samples: List[DataSample],
        params: List[torch.nn.Parameter],
    ) -> List[Optional[torch.Tensor]]:
        """Gradients of the training loss with respect to ``params``.

        Under fp16 autocast the logits' gradient (fp32) is multiplied by
        one power of two for the batch before it enters the network, and
        the weights' gradients are divided by it in fp32 (exact); an
        overflow computes them again in fp32 (logged once). Under bf16 they
        are computed in fp32 (logged once): on a batch of confident samples
        bf16 turned the scaled gradient of some weight tensors by 15-43
        degrees, depending on the CPU's float path.
        """
        device_type = inputs.device.type
        precision = precision_name(device_type)
        if precision == 'bf16':
            self._log_once(
                'AWP: the weight perturbation is computed in fp32 under '
                'bf16 autocast (bf16 turns its direction)'
            )
        if precision != 'fp16':
            with autocast_off(device_type):
                losses, _ = self._training_losses(inputs, adv_inputs, data_samples)
                loss, _ = self.parse_losses(losses)
                return list(torch.autograd.grad(loss, params, allow_unused=True))
        logits: List[torch.Tensor] = []
        losses, _ = self._training_losses(inputs, adv_inputs, data_samples, record=logits)
        loss, _ = self.parse_losses(losses)
        grads = _scaled_backward(loss, logits, params)
        # one sync per iteration
        finite = [torch.isfinite(g).all() for g in grads if g is not None]
        if finite and not bool(torch.stack(finite).all()):
            self._log_once(
                'AWP: the scaled weight gradient overflowed in fp16; '
                'such batches take it again in fp32'
            )
            with autocast_off(device_type):
                return self._awp_grads(inputs, adv_inputs, data_samples, params)
        return grads

    def _logits(
        self, x: torch.Tensor, params: Optional[dict], record: Optional[list] = None
    ) -> torch.Tensor:
        """The head's logits of ``x``, at the weights overridden by ``params``.

        With ``record`` (a list) they are fp32 tensors, each appended to it.
        """
        if params is None:
            logits = self.head(self.extract_feat(x))
        else:
            # the same network with some parameters replaced by `params`
            logits = functional_call(self, params, (x,), dict(mode='tensor'))
        if record is None:
            return logits
        if isinstance(logits, (tuple, list)):
            logits = type(logits)(t.float() for t in logits)
            record.extend(logits)
        else:
            logits = logits.float()
            record.append(logits)
        return logits

    def _training_losses(self, inputs, adv_inputs, data_samples, params=None, record=None):
        """Loss terms and log values, at the weights overridden by ``params``;
        ``record`` (a list) collects the fp32 logits they are computed from."""
        trades = self.adv_loss == 'trades'
        weight = self.adv_loss_weight
        # dual BN (DualBatchNorm): each batch through its own branch
        if weight == 1 and not trades:  # pure AT: no clean pass at all
            with dual_bn_route(self, 'adv'):
                logits = dict(adv=self._logits(adv_inputs, params, record))
        elif self.adv_forward == 'separate':
            with dual_bn_route(self, 'clean'):
                clean = self._logits(inputs, params, record)
            with dual_bn_route(self, 'adv'):
                logits = dict(clean=clean, adv=self._logits(adv_inputs, params, record))
        else:
            with dual_bn_route(self, inputs.size(0)):  # clean rows first
                both = self._logits(torch.cat([inputs, adv_inputs]), params, record)
            n = inputs.size(0)
            logits = dict(clean=_take(both, slice(None, n)), adv=_take(both, slice(n, None)))

        # mmpretrain's public ClsHead.loss(feats, data_samples) computes the
        # logits itself; these come from elsewhere (one pass over the clean and
        # adversarial rows split in two, AWP's perturbed weights through
        # functional_call, fp32 copies recorded for AWP's scaled backward), so
        # the losses come from the head's own logits -> losses step, its
        # _get_loss (ConformerHead and MultiLabelClsHead override it: a copy
        # built on head.loss_module would lose that)
        losses, logs = {}, {}
        for name, scores in logits.items():
            if trades and name == 'adv':
                with torch.no_grad():  # for the log only
                    half = self.head._get_loss(scores, data_samples)
            else:
                half = self.head._get_loss(scores, data_samples)
                half_weight = 1.0 if trades else (weight if name == 'adv' else 1 - weight)
                for key, value in half.items():
                    losses[key] = losses.get(key, 0) + half_weight * value
            logs[f'loss_{name}'] = sum(v.detach() for k, v in half.items() if 'loss' in k)
            logs[f'acc_{name}'] = self._accuracy(scores, data_samples)
        if trades:
            kl = F.kl_div(
                logits['adv'].float().log_softmax(dim=1),
                logits['clean'].float().softmax(dim=1),
                reduction='batchmean',
            )
            # not the head's 'loss': mmengine logs the total under that name
            losses['loss_ce'] = losses.pop('loss')
            losses['loss_kl'] = self.trades_beta * kl
            logs['trades_kl'] = kl.detach()
        return losses, logs

    @torch.no_grad()
    def _accuracy(self, scores, data_samples: List[DataSample]) -> torch.Tensor:
        if isinstance(scores, (tuple, list)):  # e.g. Conformer: summed branches
            scores = sum(scores)
        if 'gt_score' in data_samples[0]:  # mixup/cutmix: the dominant class
            labels = torch.stack([s.gt_score for s in data_samples]).argmax(dim=1)
        else:
            labels = torch.cat([s.gt_label for s in data_samples])
        return (scores.argmax(dim=1) == labels.to(scores.device)).float().mean() * 100


# GradAlign leaves out a sample whose scaled input gradient's largest entry
# is below this (exactly 0: a saturated softmax; or negligible beside the
# batch's, with one scale for a train-mode BatchNorm batch)
GRAD_ALIGN_MIN_PEAK = 2.0**-60
# The largest entry of the batch's scaled logit gradient lies in [1, 2): the
# weights' gradients sum it over the batch and positions, within fp16's range
AWP_LOGIT_GRAD_EXP = 0


def _scaled_backward(
    loss: torch.Tensor, logits: Sequence[torch.Tensor], params: Sequence[torch.Tensor]
) -> List[Optional[torch.Tensor]]:
    """``d loss / d params`` with the (fp32) gradient of ``logits`` scaled.

    ``loss`` depends on the weights through ``logits`` only. Their gradient
    is taken in fp32, multiplied by the power of two that puts its largest
    entry at ``2**AWP_LOGIT_GRAD_EXP`` (one factor for the batch: the
    weights' gradient sums over samples) before it is cast for the
    network's backward, and the weights' gradients are divided by it.
    """
    logits = list(logits)
    dlogits = torch.autograd.grad(loss, logits, retain_graph=True, allow_unused=True)
    used = [(t, d) for t, d in zip(logits, dlogits) if d is not None]
    if not used:
        return [None] * len(params)
    with torch.no_grad():
        peak = torch.stack([d.abs().amax() for _, d in used]).amax()
    scale = _pow2_scale(peak, AWP_LOGIT_GRAD_EXP)
    grads = torch.autograd.grad(
        [t for t, _ in used], params, grad_outputs=[d * scale for _, d in used], allow_unused=True
    )
    return [None if g is None else g.float() / scale for g in grads]


class _ImageLogits:
    """The classifier's (summed) logits as a function of [0, 1] images, at
    the weights overridden by ``params``: GradAlign's input gradients."""

    def __init__(
        self, classifier: 'AdvImageClassifier', normalize: Callable, params: Optional[dict]
    ):
        self.classifier, self.normalize, self.params = classifier, normalize, params

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier._logits(self.normalize(x), self.params)
        if isinstance(logits, (tuple, list)):
            logits = sum(logits)
        return logits


def _scaled_input_grad(
    model_fn: Callable,
    images: torch.Tensor,
    targets: torch.Tensor,
    create_graph: bool,
    per_sample: bool = True,
) -> torch.Tensor:
    """Input gradient of the cross entropy at ``images``, each row multiplied
    by a constant: for cosines only.

    The loss is computed in float64 from the logits, and each sample's loss
    multiplied by the power of two that puts the largest entry of its
    logits' gradient at ``2**LOGIT_GRAD_EXP`` (one factor for the batch
    unless ``per_sample``): a confident sample's gradient (a softmax
    saturated by tens of nats) then neither underflows in the fp16 or fp32
    backward nor meets the reciprocal of a tiny norm in the double backprop
    (``create_graph``; the weights' gradient of GradAlign's term was NaN in
    fp32 at logits x5). Only a gradient that is 0 in float64 stays 0.
    """
    x = images.detach().requires_grad_(True)
    logits = model_fn(x).double()
    if targets.dim() == 2:
        losses = -(targets.double() * logits.log_softmax(dim=1)).sum(dim=1)
    else:
        losses = F.cross_entropy(logits, targets, reduction='none')
    (dlogits,) = torch.autograd.grad(losses.sum(), logits, retain_graph=True)
    peak = dlogits.abs().amax(dim=1)
    scale = _pow2_scale(peak if per_sample else peak.amax().expand_as(peak), LOGIT_GRAD_EXP)
    (grad,) = torch.autograd.grad((losses * scale).sum(), x, create_graph=create_graph)
    return grad if create_graph else grad.detach()


def _pow2_scale(peak: torch.Tensor, exp: int) -> torch.Tensor:
    """Powers of two (``peak``'s dtype, no gradient) that bring ``peak`` into
    ``[2**exp, 2**(exp + 1))``; 1 where it is 0 or not finite."""
    with torch.no_grad():
        _, e = torch.frexp(peak)
        limit = int(torch.finfo(peak.dtype).max).bit_length() - 2  # 126 in fp32
        shift = (exp + 1 - e).clamp_(-limit, limit).to(peak.dtype)
        usable = torch.isfinite(peak) & (peak > 0)
        return torch.where(usable, torch.exp2(shift), torch.ones_like(shift))


def _peak_normalized(rows: torch.Tensor) -> torch.Tensor:
    """Each row divided by its largest absolute entry (detached; at least
    ``GRAD_ALIGN_MIN_PEAK``, so that the reciprocal stays finite)."""
    peak = rows.detach().abs().amax(dim=1, keepdim=True)
    return rows / peak.clamp(min=GRAD_ALIGN_MIN_PEAK)


def _take(feats, index):
    """Index the batch dimension of a tensor or a tuple of tensors."""
    if isinstance(feats, (tuple, list)):
        return type(feats)(f[index] for f in feats)
    return feats[index]


def _check_recipe(adv_loss, adv_loss_weight, trades_beta, adv_forward) -> float:
    """Check the loss recipe keys; returns the effective adversarial weight."""
    if adv_loss not in AdvImageClassifier.ADV_LOSSES:
        raise ValueError(
            f'model.adv_loss must be one of {AdvImageClassifier.ADV_LOSSES}, got {adv_loss!r}'
        )
    if adv_loss == 'trades':
        if adv_loss_weight is not None:
            raise ValueError(
                "model.adv_loss_weight must be None with adv_loss='trades' (TRADES "
                f'weights its KL term with trades_beta), got {adv_loss_weight!r}'
            )
        if not isinstance(trades_beta, Number) or isinstance(trades_beta, bool) or trades_beta < 0:
            raise ValueError(
                'model.trades_beta must be a number >= 0 '
                f'(6.0 in the TRADES paper), got {trades_beta!r}'
            )
        adv_loss_weight = 1.0  # every batch is attacked; no mixing weight
    elif adv_loss_weight is None:
        adv_loss_weight = 0.5
    if (
        not isinstance(adv_loss_weight, Number)
        or isinstance(adv_loss_weight, bool)
        or not 0 <= adv_loss_weight <= 1
    ):
        raise ValueError(
            'model.adv_loss_weight must be a number in [0, 1] (0: '
            f'standard training, 1: Madry AT), got {adv_loss_weight!r}'
        )
    if adv_forward not in AdvImageClassifier.ADV_FORWARDS:
        raise ValueError(
            f'model.adv_forward must be one of '
            f'{AdvImageClassifier.ADV_FORWARDS}, got {adv_forward!r}'
        )
    return float(adv_loss_weight)
