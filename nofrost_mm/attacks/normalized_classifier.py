"""An mmpretrain classifier seen as a function of [0, 1] images (the attack's space)."""

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn


class NormalizedClassifier(nn.Module):
    """Wrap a classifier so that it takes [0, 1] images and returns logits.

    Attacks perturb images in raw pixel space, where ``eps`` means the same
    whatever the normalization. This module applies the conversion that
    :class:`mmpretrain.models.ClsDataPreprocessor` applies to uint8 images
    (scale to 0-255, optional BGR->RGB flip, ``(x - mean) / std`` with mean and
    std on the 0-255 scale) and returns the head's logits
    (``classifier(x, mode='tensor')``). torchattacks attacks accept it as
    their model, since their inputs are [0, 1] images too.

    Args:
        classifier (nn.Module): An mmpretrain classifier (``ImageClassifier``
            or a subclass); pass the unwrapped module, not DDP.
        mean (Sequence[float] | torch.Tensor, optional): Per-channel mean on
            the 0-255 scale, in the channel order after the optional flip.
            None skips normalization. Defaults to None.
        std (Sequence[float] | torch.Tensor, optional): Per-channel std on the
            0-255 scale. Required when ``mean`` is given. Defaults to None.
        to_rgb (bool): Flip 3-channel inputs from BGR to RGB before
            normalizing, as ``ClsDataPreprocessor(to_rgb=True)`` does.
            Defaults to False.

    Example:
        >>> net = NormalizedClassifier(model, mean=[123.675, 116.28, 103.53],
        ...                            std=[58.395, 57.12, 57.375], to_rgb=True)
        >>> logits = net(images_in_0_1)
        >>> adv = torchattacks.PGD(net, eps=8 / 255)(images_in_0_1, labels)
    """

    def __init__(
        self,
        classifier: nn.Module,
        mean: Optional[Union[Sequence[float], torch.Tensor]] = None,
        std: Optional[Union[Sequence[float], torch.Tensor]] = None,
        to_rgb: bool = False,
    ):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError(
                'NormalizedClassifier: give both `mean` and `std` (0-255 scale) or neither'
            )
        self.classifier = classifier
        self.to_rgb = to_rgb
        if mean is not None:
            self.register_buffer(
                'mean', torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1), False
            )
            self.register_buffer(
                'std', torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1), False
            )
        else:
            self.mean = self.std = None

    @classmethod
    def from_preprocessor(
        cls, classifier: nn.Module, preprocessor: Optional[nn.Module] = None, flip: bool = True
    ) -> 'NormalizedClassifier':
        """The classifier seen through its ``ClsDataPreprocessor``'s normalization.

        The one place that reads how an mmpretrain preprocessor normalizes
        (it exposes no public flag for it).

        Args:
            classifier (nn.Module): The unwrapped classifier.
            preprocessor (nn.Module, optional): Its data preprocessor;
                defaults to ``classifier.data_preprocessor``.
            flip (bool): Apply the preprocessor's BGR->RGB flip; False for
                inputs that already went through it. Defaults to True.
        """
        pre = classifier.data_preprocessor if preprocessor is None else preprocessor
        mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
        if not getattr(pre, '_enable_normalize', mean is not None):
            mean = std = None
        return cls(
            classifier,
            None if mean is None else mean.flatten(),
            None if std is None else std.flatten(),
            to_rgb=flip and getattr(pre, '_channel_conversion', False),
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Turn [0, 1] images into the classifier's input, as the preprocessor does."""
        x = x * 255.0
        if self.to_rgb and x.size(1) == 3:
            x = x.flip(1)
        if self.mean is not None:
            x = (x - self.mean.to(x)) / self.std.to(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize [0, 1] images (N, C, H, W) and return the logits (N, K)."""
        logits = self.classifier(self.normalize(x), mode='tensor')
        if not isinstance(logits, torch.Tensor):
            raise TypeError(
                f'{type(self.classifier).__name__}(x, mode="tensor") returned '
                f'{type(logits).__name__}; an attack needs one logits tensor '
                '(a classifier with a single classification head)'
            )
        if logits.dim() == 1:
            # mmpretrain's LeNet5 squeezes a one-image batch to (K,): an
            # attack's last survivor would lose its class dimension
            logits = logits.view(x.shape[0], -1)
        return logits
