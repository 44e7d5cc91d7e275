"""Score a 1000-class model on a class subset (ImageNet-R, ImageNet-A)."""

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from nofrost_mm.datasets.wnid_folder_dataset import check_head_width


class ClassSubsetLogits:
    """Keep only some logits of a classifier head (a removable forward hook).

    The head's output (N, K) becomes ``output[:, indices]``, so predictions,
    losses and attacks that call the head (``model(x, mode='tensor')``,
    ``model.predict``) all see the subset's logits, with gradients.

    Args:
        head (nn.Module): The classifier head.
        indices (Sequence[int]): Kept logits, in the subset's label order.
        num_outputs (int): Width the head must have. Defaults to 1000.
        owner (str): Name in error messages. Defaults to 'ClassSubsetLogits'.
    """

    def __init__(
        self,
        head: nn.Module,
        indices: Sequence[int],
        num_outputs: int = 1000,
        owner: str = 'ClassSubsetLogits',
    ):
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)
        # a copy per device, made once: attacks call the head every step
        self._on_device = {self.indices.device: self.indices}
        self.num_outputs = num_outputs
        self.owner = owner
        self.handle = head.register_forward_hook(self._restrict)

    def _restrict(self, module, args, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f'{self.owner}: the head returned '
                f'{type(output).__name__}; it needs one logits tensor'
            )
        if output.size(-1) != self.num_outputs:
            raise ValueError(
                f'{self.owner}: the head returns {output.size(-1)} logits, but '
                f'the class subset indexes the {self.num_outputs} ImageNet-1k '
                'classes'
            )
        indices = self._on_device.get(output.device)
        if indices is None:
            indices = self._on_device[output.device] = self.indices.to(output.device)
        return output.index_select(-1, indices)

    def remove(self) -> None:
        """Give the head back its full output."""
        self.handle.remove()


@HOOKS.register_module()
class ClassSubsetHook(Hook):
    """Restrict a 1000-class model to the classes of a subset test set.

    ImageNet-R and ImageNet-A hold 200 of the 1000 ImageNet-1k classes; their
    official evaluation keeps those 200 logits before the arg-max. When the
    val or test dataset's ``metainfo`` has ``class_subset`` (ImageNet-1k
    indices, set by :class:`ImageNetR`, :class:`ImageNetA` and
    :class:`WnidFolderDataset`), this hook makes the model's head return only
    those logits for the duration of the val/test run: the standard
    evaluators (``Accuracy``) then compare with the dataset's labels (the
    subset index, 0..199), and attacks of :class:`RobustTestLoop` or a
    preprocessor's ``test_attack`` see the same 200 logits (AutoAttack's
    class count included). Datasets without ``class_subset`` are untouched.

    Before the first batch it checks that the head has as many outputs as
    the index space (``num_outputs``, 1000 for ImageNet), naming both widths
    otherwise.

    Args:
        num_outputs (int): Number of classes the subset indices refer to.
            Defaults to 1000.

    The plug-in's ``default_runtime.py`` holds it in ``default_hooks`` (a
    leaf config's own ``custom_hooks`` do not drop it), the ImageNet-R/-A
    dataset bases in ``custom_hooks`` (for other runtimes); of several
    ClassSubsetHooks of a runner only the first acts.

    Example:
        >>> default_hooks = dict(class_subset=dict(type='ClassSubsetHook'))
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_outputs: int = 1000):
        if not isinstance(num_outputs, int) or num_outputs < 2:
            raise ValueError(
                f'ClassSubsetHook.num_outputs must be an int >= 2, got {num_outputs!r}'
            )
        self.num_outputs = num_outputs
        self._active: Optional[ClassSubsetLogits] = None

    def before_val(self, runner) -> None:
        self._install(runner, runner.val_dataloader.dataset)

    def after_val(self, runner) -> None:
        self._remove()

    def before_test(self, runner) -> None:
        self._install(runner, runner.test_dataloader.dataset)

    def after_test(self, runner) -> None:
        self._remove()

    def _install(self, runner, dataset) -> None:
        self._remove()
        first = next(
            (h for h in getattr(runner, 'hooks', ()) if isinstance(h, ClassSubsetHook)), self
        )
        if first is not self:
            return  # a config may name it twice (default and custom hooks)
        meta = getattr(dataset, 'metainfo', {}) or {}
        indices = meta.get('class_subset')
        if indices is None:
            return
        name = type(dataset).__name__
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, 'head', None)
        if head is None:
            raise ValueError(
                f'ClassSubsetHook: {name} scores a classifier head '
                f'on {len(indices)} of its logits; '
                f'{type(model).__name__} has no head'
            )
        check_head_width(getattr(head, 'num_classes', None), len(indices), self.num_outputs, name)
        bad = [i for i in indices if not 0 <= i < self.num_outputs]
        if bad:
            raise ValueError(
                f'ClassSubsetHook: {name} class_subset index {bad[0]} '
                f'is outside 0..{self.num_outputs - 1}'
            )
        self._active = ClassSubsetLogits(
            head, indices, self.num_outputs, owner=f'ClassSubsetHook ({name})'
        )

    def _remove(self) -> None:
        if self._active is not None:
            self._active.remove()
            self._active = None
