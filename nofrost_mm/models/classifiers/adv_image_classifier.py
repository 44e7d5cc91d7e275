"""ImageClassifier that takes clean and adversarial batches (PGD-AT loss mixing)."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class AdvImageClassifier(ImageClassifier):
    """Image classifier for adversarial training with a weighted clean/adv loss.

    :class:`PGDDataPreprocessor` hands it the clean batch and its adversarial
    version (``adv_inputs``); the loss is
    ``(1 - w) * loss(clean) + w * loss(adv)`` for every term the head returns,
    with ``w = data_preprocessor.adv_loss_weight``. With
    ``data_preprocessor.adv_forward='separate'`` the halves go through the
    network in two forward passes (BN statistics of each pass are its own, as
    in the official NoFrost code); with 'concat' in one pass over the
    concatenated batch, split before the head. Without ``adv_inputs`` (val,
    test, ``adv_loss_weight=0``) it is an ``ImageClassifier``.

    After each adversarial loss it keeps ``adv_log_vars``: loss_clean,
    loss_adv (unweighted sums of the head's loss terms) and acc_clean, acc_adv
    (top-1 %, from a no-grad head pass on the same features), which
    :class:`AdversarialTrainingHook` logs.

    Args:
        Same as :class:`mmpretrain.models.ImageClassifier`; set
        ``data_preprocessor.type='PGDDataPreprocessor'``.

    Example:
        >>> model = dict(type='AdvImageClassifier',
        ...              backbone=dict(type='ResNet_CIFAR', depth=18),
        ...              neck=dict(type='GlobalAveragePooling'),
        ...              head=dict(type='LinearClsHead', num_classes=10,
        ...                        in_channels=512),
        ...              data_preprocessor=dict(type='PGDDataPreprocessor'))
    """

    # PGDDataPreprocessor sends `adv_inputs` only to classifiers saying so
    accepts_adv_inputs = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.adv_log_vars: Dict[str, torch.Tensor] = {}

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor',
                adv_inputs: Optional[torch.Tensor] = None):
        """ImageClassifier's forward, plus ``adv_inputs`` in 'loss' mode.

        Args:
            inputs (torch.Tensor): The (clean) batch.
            data_samples (List[DataSample], optional): Annotations.
            mode (str): 'tensor', 'predict' or 'loss'. Defaults to 'tensor'.
            adv_inputs (torch.Tensor, optional): Adversarial version of
                ``inputs`` (same labels). Defaults to None.
        """
        if adv_inputs is None:
            return super().forward(inputs, data_samples, mode)
        if mode != 'loss':
            raise RuntimeError(f'adv_inputs are only used in "loss" mode, got "{mode}"')
        return self.adv_loss(inputs, adv_inputs, data_samples)

    def adv_loss(self, inputs: torch.Tensor, adv_inputs: torch.Tensor,
                 data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Weighted clean/adversarial loss.

        Args:
            inputs (torch.Tensor): The clean batch.
            adv_inputs (torch.Tensor): The adversarial batch.
            data_samples (List[DataSample]): Annotations of both.

        Returns:
            dict[str, Tensor]: The head's loss terms, mixed.
        """
        preprocessor = self.data_preprocessor
        weight = preprocessor.adv_loss_weight
        if weight == 1:
            halves = dict(adv=self.extract_feat(adv_inputs))
        elif preprocessor.adv_forward == 'separate':
            halves = dict(clean=self.extract_feat(inputs), adv=self.extract_feat(adv_inputs))
        else:
            feats = self.extract_feat(torch.cat([inputs, adv_inputs]))
            n = inputs.size(0)
            halves = dict(clean=_take(feats, slice(None, n)), adv=_take(feats, slice(n, None)))

        losses, self.adv_log_vars = {}, {}
        for name, feats in halves.items():
            half = self.head.loss(feats, data_samples)
            half_weight = weight if name == 'adv' else 1 - weight
            for key, value in half.items():
                losses[key] = losses.get(key, 0) + half_weight * value
            self.adv_log_vars[f'loss_{name}'] = sum(
                v.detach() for k, v in half.items() if 'loss' in k)
            self.adv_log_vars[f'acc_{name}'] = self._accuracy(feats, data_samples)
        return losses

    @torch.no_grad()
    def _accuracy(self, feats, data_samples: List[DataSample]) -> torch.Tensor:
        scores = self.head(feats)
        if 'gt_score' in data_samples[0]:  # mixup/cutmix: the dominant class
            labels = torch.stack([s.gt_score for s in data_samples]).argmax(dim=1)
        else:
            labels = torch.cat([s.gt_label for s in data_samples])
        return (scores.argmax(dim=1) == labels.to(scores.device)).float().mean() * 100


def _take(feats, index):
    """Index the batch dimension of a neck output (tensor or tuple of tensors)."""
    if isinstance(feats, (tuple, list)):
        return type(feats)(f[index] for f in feats)
    return feats[index]
