"""Drives PGD adversarial training: attack target, schedules, logs, robust validation."""

import bisect
import copy
import math
from typing import Callable, Optional, Sequence, Union

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from nofrost_mm.attacks import PGDAttack, build_attack, model_state
from nofrost_mm.attacks.mixed_precision import autocast_off
from nofrost_mm.attacks.survivors import attack_survivors
from nofrost_mm.models.classifiers import AdvImageClassifier
from nofrost_mm.models.data_preprocessors import PGDDataPreprocessor
from nofrost_mm.utils import (
    DeviceTimer,
    check_bool,
    check_number,
    cudnn_autotuning,
    update_device_scalar,
)

ROBUST_PREFIX = 'robust_accuracy'


@HOOKS.register_module()
class AdversarialTrainingHook(Hook):
    """Adversarial training with :class:`PGDDataPreprocessor`.

    - Before the run it checks the model and its preprocessor fit: the model
      must be an :class:`AdvImageClassifier` (the owner of the adversarial
      batch and loss) with a :class:`PGDDataPreprocessor`; anything else
      fails here, before any data is read.
    - Each iteration it schedules the training attack through the owner of
      the training eps, ``PGDDataPreprocessor.schedule`` (the only writer):
      ``eps`` (linear warm-up from 0 over ``eps_warmup`` epochs or
      iterations, up to the configured ``data_preprocessor.eps``,
      ``PGDDataPreprocessor.train_eps``) and ``steps`` (a curriculum, e.g.
      the official ``steps_schedule=[3, 5, 7]`` at ``steps_milestones``), and
      logs ``adv_eps``, ``adv_steps``, ``attack_time_share`` and, with
      :class:`AdvImageClassifier`, ``loss_clean``, ``loss_adv``,
      ``acc_clean``, ``acc_adv`` (``trades_kl`` with TRADES, ``awp_gamma``
      with adversarial weight perturbation). It writes one log line naming
      the precision the training attack runs in (under ``--amp`` that of
      the autocast when the attack is safe in it, see
      :class:`PGDDataPreprocessor`), and another whenever it changes.
    - With ``model.awp_gamma > 0`` it keeps AWP off during the first
      ``awp_warmup`` epochs (iterations).
    - In validation epochs number ``k * adv_val_interval`` and in the last
      ``adv_val_last`` fraction of training it measures robust top-1
      accuracy on the val set under ``val_attack`` (official: PGD-5), logged
      as ``robust_accuracy/top1`` beside the clean accuracy. It attacks each
      val batch right after its clean prediction, in the same pass, so both
      numbers come from the same weights (EMAHook's too, at any priority);
      samples predicted wrongly clean are not attacked. The attack runs in
      the precision of the moment, made safe as the training attack is;
      whether an attacked image is misclassified is decided in fp32.
      CheckpointHook
      can keep the best of both:
      ``save_best=['accuracy/top1', 'robust_accuracy/top1'], rule='greater'``
      (epochs without the robust evaluation report -inf for it, never a best).

    The hook keeps no state of its own: eps, steps and AWP follow from the
    runner's epoch and iteration, so resuming continues the schedules.

    Args:
        eps_warmup (int): Length of the linear eps warm-up, in epochs
            (``by_epoch=True``, updated every iteration) or iterations.
            0 disables it. Defaults to 0.
        steps_schedule (Sequence[int], optional): Attack steps for each phase;
            None keeps the preprocessor's attack steps. Defaults to None.
        steps_milestones (Sequence[int]): Epochs (or iterations) at which the
            next entry of ``steps_schedule`` starts; one fewer than
            ``steps_schedule``. Defaults to ().
        by_epoch (bool): Count ``eps_warmup``, ``steps_milestones`` and
            ``adv_val_interval`` in epochs, else iterations. Defaults to True.
        adv_val_interval (int): Robust validation every that many epochs
            (iterations); 0 disables robust validation. Defaults to 10.
        adv_val_offset (int): Robust validation after epochs (iterations)
            ``adv_val_offset + k * adv_val_interval`` instead of ``k *
            adv_val_interval``: 1 gives the official NoFrost PGDAT.py's
            epochs 1, 11, 21, ... (its 0-based ``epoch % 10 == 0``).
            Defaults to 0.
        adv_val_last (float): Also validate robustness in this final fraction
            of training, in [0, 1]. Defaults to 0.1.
        val_attack (dict | Callable): Attack of the robust validation; a
            ``PGDAttack`` config without ``eps`` is built at the training eps
            (``PGDDataPreprocessor.train_eps``) before the run.
            Defaults to ``dict(type='PGDAttack', steps=5)``.
        awp_warmup (int): Epochs (iterations) trained without adversarial
            weight perturbation before it starts; needs ``model.awp_gamma >
            0`` when not 0. Defaults to 0.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook, before LoggerHook/CheckpointHook

    def __init__(
        self,
        eps_warmup: int = 0,
        steps_schedule: Optional[Sequence[int]] = None,
        steps_milestones: Sequence[int] = (),
        by_epoch: bool = True,
        adv_val_interval: int = 10,
        adv_val_last: float = 0.1,
        val_attack: Union[dict, Callable] = dict(type='PGDAttack', steps=5),
        awp_warmup: int = 0,
        adv_val_offset: int = 0,
    ):
        key = 'AdversarialTrainingHook.'
        # counts of epochs or iterations (by_epoch)
        for name, value in (
            ('eps_warmup', eps_warmup),
            ('adv_val_interval', adv_val_interval),
            ('adv_val_offset', adv_val_offset),
            ('awp_warmup', awp_warmup),
        ):
            check_number(key + name, value, integer=True, min_value=0)
        check_bool(key + 'by_epoch', by_epoch)
        check_number(key + 'adv_val_last', adv_val_last, min_value=0, max_value=1)
        milestones = list(steps_milestones)
        if steps_schedule is not None:
            steps_schedule = list(steps_schedule)
            if not steps_schedule:
                raise ValueError(
                    f'{key}steps_schedule must be a non-empty list of ints >= 1, got []'
                )
            for i, steps in enumerate(steps_schedule):
                check_number(f'{key}steps_schedule[{i}]', steps, integer=True, min_value=1)
            if len(milestones) != len(steps_schedule) - 1:
                raise ValueError(
                    f'{key}steps_milestones needs one entry fewer than '
                    f'steps_schedule ({len(steps_schedule) - 1}), got {milestones!r}'
                )
        elif milestones:
            raise ValueError(f'{key}steps_milestones needs steps_schedule')
        for i, milestone in enumerate(milestones):
            check_number(f'{key}steps_milestones[{i}]', milestone, integer=True, min_value=1)
        if milestones != sorted(set(milestones)):
            raise ValueError(f'{key}steps_milestones must be increasing, got {milestones!r}')
        # the schedules, counted in epochs or iterations (by_epoch)
        self.by_epoch = by_epoch
        self.eps_warmup, self.awp_warmup = eps_warmup, awp_warmup
        self.steps_schedule, self.steps_milestones = steps_schedule, milestones
        # when robust validation runs
        self.adv_val_interval, self.adv_val_last = adv_val_interval, adv_val_last
        self.adv_val_offset = adv_val_offset
        # built now, so that a bad attack fails before the run; one that
        # follows the training eps is built again at it (before_run)
        self._val_attack_cfg = val_attack
        self.val_attack = _build_val_attack(val_attack)
        self._iter_timer: Optional[DeviceTimer] = None
        # between before_train and after_train: validations follow the
        # schedule; outside (runner.val()) every validation is robust
        self._training = False
        self._logged_precision = None

    @staticmethod
    def _unwrap(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        model = self._unwrap(runner)
        preprocessor = getattr(model, 'data_preprocessor', None)
        if not isinstance(preprocessor, PGDDataPreprocessor):
            raise TypeError(
                'AdversarialTrainingHook needs '
                "model.data_preprocessor.type='PGDDataPreprocessor' (got "
                f'{type(preprocessor).__name__}): add data_preprocessor = '
                "dict(type='PGDDataPreprocessor', attack=dict(type='PGDAttack', "
                'eps=8, steps=10), ...) to the config'
            )
        if not isinstance(model, AdvImageClassifier):
            raise TypeError(
                "AdversarialTrainingHook needs model.type='AdvImageClassifier' "
                '(it owns the adversarial batch and loss; any mmpretrain '
                f'ImageClassifier config takes that type), got {type(model).__name__}'
            )
        awp_gamma = getattr(model, 'awp_gamma', 0)
        if self.awp_warmup and not awp_gamma:
            raise ValueError(
                'AdversarialTrainingHook.awp_warmup needs adversarial '
                "weight perturbation: model.type='AdvImageClassifier' "
                'with model.awp_gamma > 0'
            )
        if awp_gamma and model.adv_loss_weight == 0:
            raise ValueError(
                'model.awp_gamma > 0 perturbs the weights for the '
                'adversarial loss, but model.adv_loss_weight=0 '
                'runs no attack: set awp_gamma=0 or a loss weight > 0'
            )
        attack = preprocessor.attack
        for key, needed in (('eps', self.eps_warmup), ('steps', self.steps_schedule)):
            if needed and key not in preprocessor.budget:
                raise TypeError(
                    f'AdversarialTrainingHook schedules `{key}`, which the '
                    f'training attack {type(attack).__name__} does not have'
                )
        # the training eps, where the unit is known (PGDAttack: pixel /255)
        cfg = self._val_attack_cfg
        if isinstance(cfg, dict) and 'eps' not in cfg and isinstance(self.val_attack, PGDAttack):
            if preprocessor.train_eps is None:
                raise TypeError(
                    'AdversarialTrainingHook.val_attack names no eps and the training '
                    f'attack {type(attack).__name__} has none to follow: set '
                    'val_attack.eps (pixel units of 255)'
                )
            self.val_attack = _build_val_attack(dict(cfg, eps=preprocessor.train_eps))

    def before_train(self, runner) -> None:
        self._training = True

    def after_train(self, runner) -> None:
        self._training = False

    # -- schedules and logs ---------------------------------------------------
    def _progress(self, runner) -> float:
        """Training progress in epochs (fractional) or iterations, at this iteration."""
        if self.by_epoch:
            return (runner.iter + 1) / max(len(runner.train_dataloader), 1)
        return runner.iter + 1

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        preprocessor = self._unwrap(runner).data_preprocessor
        eps_scale, steps = 1.0, None
        if self.eps_warmup:
            eps_scale = min(1.0, self._progress(runner) / self.eps_warmup)
        if self.steps_schedule is not None:
            # milestone m starts at epoch m (0-based runner.epoch) or iteration m
            done = runner.epoch if self.by_epoch else runner.iter
            steps = self.steps_schedule[bisect.bisect_right(self.steps_milestones, done)]
        if self.eps_warmup or self.steps_schedule is not None:
            preprocessor.schedule(eps_scale, steps)
        if getattr(self._unwrap(runner), 'awp_gamma', 0):
            done = runner.epoch if self.by_epoch else runner.iter
            self._unwrap(runner).awp_enabled = done >= self.awp_warmup
        # CUDA events on a GPU: the iteration is timed without waiting for it
        self._iter_timer = DeviceTimer(next(self._unwrap(runner).parameters()).device).start()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = self._unwrap(runner)
        preprocessor = model.data_preprocessor
        hub = runner.message_hub
        for key, value in preprocessor.budget.items():
            hub.update_scalar(f'train/adv_{key}', value)
        iteration, attack = self._iter_timer, preprocessor.attack_timer
        if (
            getattr(model, 'adv_loss_weight', 1) > 0
            and attack is not None
            and iteration is not None
        ):
            iteration.stop()
            # device values are read on the host when the logger writes them
            update_device_scalar(
                hub, 'train/attack_time_share', lambda: _time_share(attack, iteration)
            )
        if getattr(model, 'awp_gamma', 0):
            hub.update_scalar('train/awp_gamma', model.awp_gamma * model.awp_enabled)
        for key, value in getattr(model, 'adv_log_vars', {}).items():
            update_device_scalar(hub, f'train/{key}', value)
        precision = preprocessor.train_attack_precision
        if precision is not None and precision != self._logged_precision:
            self._logged_precision = precision
            runner.logger.info(
                f'AdversarialTrainingHook: the training attack '
                f'{type(preprocessor.attack).__name__} runs in {precision}'
                + (
                    ''
                    if precision == 'fp32'
                    else ' autocast (fp32 logits and loss, per-sample scaled input gradients)'
                )
            )

    # -- robust validation ----------------------------------------------------
    def _robust_val_due(self, runner) -> bool:
        if self.adv_val_interval == 0:
            return False
        if not self._training:
            return True  # a standalone validation
        done, total = (
            (runner.epoch, runner.max_epochs) if self.by_epoch else (runner.iter, runner.max_iters)
        )
        return (
            (
                done >= self.adv_val_offset
                and (done - self.adv_val_offset) % self.adv_val_interval == 0
            )
            or done == total
            or done > total - math.ceil(self.adv_val_last * total)
        )

    def before_val_epoch(self, runner) -> None:
        self._robust_evaluator = None
        if not self._robust_val_due(runner):
            return
        dataloader = runner.val_dataloader
        self._robust_evaluator = runner.build_evaluator(
            dict(type='Accuracy', topk=(1,), prefix=ROBUST_PREFIX)
        )
        self._robust_evaluator.dataset_meta = getattr(dataloader.dataset, 'metainfo', None)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Robust predictions of this batch, by the model that just made the clean ones.

        Running here, inside the validation pass, ties every robust number
        to the weights of its clean twin: hooks that swap weights for
        validation (EMAHook) do so around the whole pass, whatever their
        priority. Samples the clean pass got wrong are not attacked (they
        count as broken), so robust accuracy never exceeds clean accuracy.
        """
        if getattr(self, '_robust_evaluator', None) is None or not outputs:
            return
        model = self._unwrap(runner)
        preprocessor = model.data_preprocessor
        with torch.no_grad():
            data = preprocessor(data_batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        # the clean decisions, compared on the device (no read per sample)
        device = inputs.device
        clean = torch.cat([o.pred_label.view(-1) for o in outputs]).to(device)
        labels = torch.cat([o.gt_label.view(-1) for o in outputs]).to(device)
        targets = preprocessor.attack_targets(samples).to(device)
        robust = copy.deepcopy(list(outputs))
        predicted = []

        def attack(rows):
            return preprocessor.attack_inputs(
                model, inputs[rows], targets[rows], self.val_attack, train_mode=False
            )

        def predict(adv, rows):
            # predicted as the batch the clean pass predicted, attacked rows
            # swapped in: a model that cannot predict one image (mmpretrain's
            # LeNet5 squeezes its logits to 1-d) predicts any batch its clean
            # pass did, also when one sample is left to attack
            attacked = inputs.clone()
            attacked[rows] = adv
            # the decision of record is fp32, whatever the attack ran in
            with model_state(model, train_mode=False), torch.no_grad(), autocast_off(device.type):
                predicted[:] = model(attacked, copy.deepcopy(samples), mode='predict')
            return torch.cat([p.pred_label.view(-1) for p in predicted]).to(device)[rows]

        # the survivors make a new batch size almost every batch: no cuDNN
        # autotuning for each (training keeps env_cfg.cudnn_benchmark)
        with cudnn_autotuning(False):
            rows, _ = attack_survivors(attack, labels, clean == labels, predict)
        for i in rows.tolist():
            robust[i].set_pred_score(predicted[i].pred_score).set_pred_label(
                predicted[i].pred_label
            )
        self._robust_evaluator.process(data_samples=robust, data_batch=data_batch)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        evaluator, self._robust_evaluator = getattr(self, '_robust_evaluator', None), None
        if metrics is None:
            return
        key = f'{ROBUST_PREFIX}/top1'
        if evaluator is None:
            metrics.setdefault(key, float('-inf'))  # CheckpointHook: never a best
            return
        dataset = runner.val_dataloader.dataset
        for name, value in evaluator.evaluate(len(dataset)).items():
            metrics[name] = value
            runner.message_hub.update_scalar(f'val/{name}', value)


def _time_share(part: DeviceTimer, whole: DeviceTimer) -> float:
    """``part``'s share of ``whole``'s time; the whole is read first: waiting
    for its later end event completes the part's too."""
    whole_seconds = whole.seconds
    return part.seconds / max(whole_seconds, 1e-9)


def _build_val_attack(cfg: Union[dict, Callable]) -> Callable:
    """``val_attack`` built, its errors naming the key."""
    try:
        return build_attack(cfg)
    except (ValueError, TypeError, KeyError) as e:
        raise type(e)(f'AdversarialTrainingHook.val_attack: {e}') from e
