"""Catch catastrophic overfitting of single-step adversarial training."""

import os.path as osp
from typing import List, Optional

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import all_reduce, barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from nofrost_mm.attacks import PGDAttack, model_state
from nofrost_mm.attacks.mixed_precision import autocast_off
from nofrost_mm.utils.checkpoint_reader import read_checkpoint
from nofrost_mm.utils.config_checks import check_bool, check_choice, check_number

CO_ACTIONS = ('warn', 'stop', 'rollback')


@HOOKS.register_module()
class CatastrophicOverfittingHook(Hook):
    """Measure PGD and FGSM accuracy during training; act on a collapse.

    Single-step adversarial training (FGSM-RS, N-FGSM) can overfit
    catastrophically: within an epoch the model stops being robust to PGD
    while it stays (or becomes) robust to FGSM, the attack it trains on
    (Wong et al. 2020). Every ``interval`` epochs (or iterations) this hook
    attacks a fixed set of ``num_samples`` held-out images (drawn once from
    the val dataloader's dataset with ``seed``) with PGD-``pgd_steps``
    (random start, the official step size) and FGSM (no random start, step
    eps), at the training attack's final eps, on the model as it is at that
    moment (the unwrapped model in eval mode, input gradients only, BN
    statistics untouched: :meth:`PGDDataPreprocessor.attack_inputs`). Hooks
    run outside the optimizer's autocast, so the checks are fp32; inside an
    autocast the attacks are made as safe as the training attack, and
    every accuracy is decided in fp32 either way. The
    attacks draw from a generator reseeded with ``seed`` at each check, so
    checks differ only by the weights, and the training RNG stream is left
    as it was. Under DDP the images are split over the ranks and the counts
    summed: every rank takes the same decision.

    It logs ``co_clean_acc``, ``co_pgd_acc`` and ``co_fgsm_acc`` (%). A
    check is flagged when PGD accuracy is more than ``max_drop`` points below
    its best so far, or FGSM accuracy is more than ``max_gap`` points above
    PGD accuracy. A flagged check warns with the numbers and the last good
    checkpoint, then, per ``action``:

    - ``'warn'``: training goes on;
    - ``'stop'``: training stops (at the end of the current epoch in an
      epoch-based loop, as mmengine's ``stop_training``); the last good
      checkpoint stays in the work dir;
    - ``'rollback'``: the weights and optimizer state of the last good
      checkpoint are loaded back and training goes on (the lr schedule and
      the iteration count do not go back); after ``max_rollbacks`` it stops.

    After each check that is not flagged the hook saves a full checkpoint
    (resumable with ``--resume``, loadable with ``load_from``) to
    ``work_dir/filename``, overwriting the previous one. Its own state (best
    accuracy, rollbacks) is kept in every checkpoint, so resuming continues it.

    Args:
        interval (int): Check every that many epochs (iterations).
            Defaults to 1.
        by_epoch (bool): Count ``interval`` and ``begin`` in epochs, else
            iterations. Defaults to True.
        begin (int): No check before this many epochs (iterations) are done.
            Defaults to 0.
        num_samples (int): Held-out images per check (all of the val set if
            it is smaller). Defaults to 256.
        batch_size (int, optional): Images per attack batch; None uses the
            val dataloader's batch size. Defaults to None.
        seed (int): Seed of the image choice and of the attacks' random
            starts. Defaults to 0.
        eps (float, optional): Attack radius in pixel units of 255; None
            takes the training attack's eps at the start of training.
            Defaults to None.
        pgd_steps (int): Steps of the PGD attack. Defaults to 10.
        max_drop (float): Largest tolerated fall of PGD accuracy below its
            best, in percentage points. Defaults to 20 (the 0.2 of
            fast_adversarial's early stopping).
        max_gap (float): Largest tolerated excess of FGSM accuracy over PGD
            accuracy, in points. Defaults to 30.
        action (str): 'warn', 'stop' or 'rollback'. Defaults to 'warn'.
        max_rollbacks (int): With ``action='rollback'``, stop after this
            many rollbacks. Defaults to 3.
        filename (str): Name of the last good checkpoint in the work dir.
            Defaults to 'co_guard_last_good.pth'.

    Example:
        >>> custom_hooks = [
        ...     dict(type='AdversarialTrainingHook'),
        ...     dict(type='CatastrophicOverfittingHook', interval=1,
        ...          action='rollback')]
    """

    priority = 'NORMAL'  # before CheckpointHook: a rollback is what it saves

    def __init__(
        self,
        interval: int = 1,
        by_epoch: bool = True,
        begin: int = 0,
        num_samples: int = 256,
        batch_size: Optional[int] = None,
        seed: int = 0,
        eps: Optional[float] = None,
        pgd_steps: int = 10,
        max_drop: float = 20.0,
        max_gap: float = 30.0,
        action: str = 'warn',
        max_rollbacks: int = 3,
        filename: str = 'co_guard_last_good.pth',
    ):
        key = 'CatastrophicOverfittingHook.'
        check_number(key + 'interval', interval, integer=True, min_value=1)
        check_bool(key + 'by_epoch', by_epoch)
        check_number(key + 'begin', begin, integer=True, min_value=0)
        check_number(key + 'num_samples', num_samples, integer=True, min_value=1)
        if batch_size is not None:
            check_number(key + 'batch_size', batch_size, integer=True, min_value=1)
        check_number(key + 'seed', seed, integer=True, min_value=0)
        if eps is not None:
            check_number(key + 'eps', eps, min_value=0, min_inclusive=False)
        check_number(key + 'pgd_steps', pgd_steps, integer=True, min_value=1)
        check_number(key + 'max_drop', max_drop, min_value=0)
        check_number(key + 'max_gap', max_gap, min_value=0)
        check_choice(key + 'action', action, CO_ACTIONS)
        check_number(key + 'max_rollbacks', max_rollbacks, integer=True, min_value=0)
        if not isinstance(filename, str) or not filename or osp.basename(filename) != filename:
            raise ValueError(f'{key}filename must be a file name (no folder), got {filename!r}')
        # when: every `interval` epochs (iterations) after `begin`
        self.interval, self.by_epoch, self.begin = interval, by_epoch, begin
        # the probe: fixed held-out images, PGD and FGSM at `eps`
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.eps, self.pgd_steps = eps, pgd_steps
        self.max_drop = float(max_drop)
        self.max_gap = float(max_gap)
        self.action = action
        self.max_rollbacks = max_rollbacks
        self.filename = filename
        # state kept in checkpoints
        self.best_pgd: Optional[float] = None
        self.best_at: Optional[int] = None
        self.last_good: Optional[str] = None
        self.rollbacks = 0
        self.history: List[dict] = []
        self._batches: List[dict] = []

    # -- set-up ---------------------------------------------------------------
    @staticmethod
    def _unwrap(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        preprocessor = getattr(self._unwrap(runner), 'data_preprocessor', None)
        if not hasattr(preprocessor, 'attack_inputs'):
            raise TypeError(
                'CatastrophicOverfittingHook needs model.data_preprocessor.type='
                f"'PGDDataPreprocessor' (got {type(preprocessor).__name__}) and "
                "custom_hooks = [dict(type='AdversarialTrainingHook'), ...]"
            )
        if self.eps is None and preprocessor.train_eps is None:
            raise TypeError(
                f'CatastrophicOverfittingHook.eps: the training attack '
                f'{type(preprocessor.attack).__name__} has no eps; set eps '
                '(pixel units of 255)'
            )

    def before_train(self, runner) -> None:
        pre = self._unwrap(runner).data_preprocessor
        # the configured training eps, whatever the warm-up has reached
        eps = float(self.eps if self.eps is not None else pre.train_eps)
        self.pgd = PGDAttack(eps=eps, steps=self.pgd_steps)
        self.fgsm = PGDAttack(eps=eps, steps=1, random_start=False, step_size=eps)
        if runner.val_loop is None:
            raise ValueError(
                'CatastrophicOverfittingHook needs val_dataloader and '
                'val_cfg (its held-out images come from the val dataset)'
            )
        loader = runner.val_dataloader  # built by Runner.train before any hook
        dataset = loader.dataset
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        chosen = sorted(order[: self.num_samples].tolist())
        rank, world_size = get_dist_info()
        mine = chosen[rank::world_size]
        size = self.batch_size or loader.batch_size or 32
        self._batches = [
            pseudo_collate([dataset[i] for i in mine[j : j + size]])
            for j in range(0, len(mine), size)
        ]
        self._total = len(chosen)

    # -- state in checkpoints -------------------------------------------------
    def _state(self) -> dict:
        return dict(
            best_pgd=self.best_pgd,
            best_at=self.best_at,
            last_good=self.last_good,
            rollbacks=self.rollbacks,
            history=list(self.history),
        )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['co_guard'] = self._state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('co_guard')
        if state:
            for key, value in state.items():
                setattr(self, key, value)

    # -- when -----------------------------------------------------------------
    def after_train_epoch(self, runner) -> None:
        if (
            self.by_epoch
            and runner.epoch + 1 > self.begin
            and self.every_n_epochs(runner, self.interval)
        ):
            self.check(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if (
            not self.by_epoch
            and runner.iter + 1 > self.begin
            and self.every_n_train_iters(runner, self.interval)
        ):
            self.check(runner)

    # -- what -----------------------------------------------------------------
    def measure(self, runner) -> dict:
        """Clean, PGD and FGSM accuracy (%) of the model on the held-out images."""
        model = self._unwrap(runner)
        pre = model.data_preprocessor
        device = next(model.parameters()).device
        correct = torch.zeros(3, dtype=torch.float64, device=device)
        devices = [device] if device.type == 'cuda' else []
        with model_state(model, train_mode=False), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            for batch in self._batches:
                with torch.no_grad():
                    data = pre(batch, False)
                inputs, samples = data['inputs'], data['data_samples']
                labels = torch.cat([s.gt_label for s in samples]).to(device)
                for k, attack in enumerate((None, self.pgd, self.fgsm)):
                    x = (
                        inputs
                        if attack is None
                        else pre.attack_inputs(model, inputs, labels, attack, train_mode=False)
                    )
                    # decided in fp32 whatever precision the attack ran in
                    with torch.no_grad(), autocast_off(device.type):
                        # (N, K) also for one image: mmpretrain's LeNet5
                        # squeezes it to (K,), and a batch can hold one
                        logits = model(x, mode='tensor').reshape(len(x), -1)
                    correct[k] += (logits.argmax(dim=1) == labels).sum()
        all_reduce(correct)  # no-op without distribution
        clean, pgd, fgsm = (100.0 * correct / self._total).tolist()
        return dict(clean=clean, pgd=pgd, fgsm=fgsm)

    def is_flagged(self, pgd: float, fgsm: float) -> List[str]:
        """Reasons why these accuracies are catastrophic overfitting (none: [])."""
        reasons = []
        if self.best_pgd is not None and self.best_pgd - pgd > self.max_drop:
            reasons.append(
                f'PGD-{self.pgd_steps} accuracy fell {self.best_pgd - pgd:.1f} points '
                f'from its best {self.best_pgd:.1f}% ({self._unit} {self.best_at}), '
                f'more than max_drop={self.max_drop:g}'
            )
        if fgsm - pgd > self.max_gap:
            reasons.append(
                f'FGSM accuracy is {fgsm - pgd:.1f} points above PGD-{self.pgd_steps} '
                f'accuracy, more than max_gap={self.max_gap:g}'
            )
        return reasons

    @property
    def _unit(self) -> str:
        return 'epoch' if self.by_epoch else 'iteration'

    def check(self, runner) -> Optional[List[str]]:
        """Measure, log, and warn/stop/roll back on catastrophic overfitting."""
        acc = self.measure(runner)
        at = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        hub = runner.message_hub
        for name, value in acc.items():
            hub.update_scalar(f'train/co_{name}_acc', value)
        reasons = self.is_flagged(acc['pgd'], acc['fgsm'])
        self.history.append(dict(at=at, flagged=bool(reasons), **acc))
        numbers = (
            f'clean {acc["clean"]:.1f}%, PGD-{self.pgd_steps} {acc["pgd"]:.1f}%, '
            f'FGSM {acc["fgsm"]:.1f}% on {self._total} held-out images at eps '
            f'{self.pgd.eps:g}/255'
        )
        if not reasons:
            if self.best_pgd is None or acc['pgd'] >= self.best_pgd:
                self.best_pgd, self.best_at = acc['pgd'], at
            runner.logger.info(
                f'CatastrophicOverfittingHook ({self._unit} {at}): '
                f'{numbers}; best PGD {self.best_pgd:.1f}%'
            )
            self._save_last_good(runner)
            return None
        where = (
            f'last good checkpoint: {self.last_good}'
            if self.last_good
            else 'no good checkpoint saved yet'
        )
        message = (
            f'CatastrophicOverfittingHook: catastrophic overfitting at '
            f'{self._unit} {at}: {"; ".join(reasons)} ({numbers}); {where}.'
        )
        stop = self.action == 'stop'
        if self.action == 'rollback':
            if self.last_good is None or self.rollbacks >= self.max_rollbacks:
                stop = True
                message += (
                    ' Nothing to roll back to'
                    if self.last_good is None
                    else f' {self.rollbacks} rollbacks done (max_rollbacks={self.max_rollbacks})'
                ) + ': training stops.'
            else:
                self._rollback(runner)
                message += (
                    f' Rolled back to it (weights and optimizer state; '
                    f'rollback {self.rollbacks} of {self.max_rollbacks}).'
                )
        elif stop:
            message += ' Training stops.'
        if stop:
            runner.train_loop.stop_training = True
        runner.logger.warning(message)
        return reasons

    def _save_last_good(self, runner) -> None:
        path = osp.join(runner.work_dir, self.filename)
        self.last_good = path  # in the checkpoint's own copy of the state too
        runner.save_checkpoint(runner.work_dir, self.filename, by_epoch=self.by_epoch)
        barrier()  # the file is complete before any rank may read it

    def _rollback(self, runner) -> None:
        # the plug-in's one checked reader: a damaged file is an error, not weights
        checkpoint = read_checkpoint(self.last_good, map_location='cpu')
        model = self._unwrap(runner)
        model.load_state_dict(checkpoint['state_dict'])
        if 'optimizer' in checkpoint:
            runner.optim_wrapper.load_state_dict(checkpoint['optimizer'])
        self.rollbacks += 1
