"""The paper's analyses of robust models: decision margins and smoothness.

Used by ``tools/analysis_tools/decision_margin.py`` and
``tools/analysis_tools/smoothness.py`` (their command line:
:func:`nofrost_mm.utils.cli.comparison_args`); every function takes a model
of [0, 1] images (:class:`NormalizedClassifier`) and works in batches.
"""

import json
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from mmengine.utils import ProgressBar

from nofrost_mm.attacks import NormalizedClassifier, PGDAttack, attack_context
from nofrost_mm.attacks.logit_margin import logit_margin
from nofrost_mm.utils import sample_keys, sample_uniform


def models_eps(labelled: list, option: str) -> Optional[float]:
    """The training eps of the configs of ``(name, config, checkpoint)``
    pairs (:func:`nofrost_mm.utils.cli.model_pairs`; all the same, else an
    error naming ``option``), or None for standard models."""
    from mmengine.config import Config

    from nofrost_mm.evaluation.robustness_report import configs_eps

    return configs_eps({config: Config.fromfile(config) for _, config, _ in labelled}, option)


def analysis_radius(
    given: Optional[float], option: str, labelled: list, default: float, factor: int = 1
) -> Tuple[float, str]:
    """An analysis' radius (pixel units of 255) and where it came from.

    Args:
        given (float, optional): The value of ``option``, None if not given.
        option (str): The option (``--eps``), named in the source and in the
            error of configs with different eps.
        labelled (list): ``(name, config, checkpoint)`` pairs.
        default (float): The radius of standard models (no training attack).
        factor (int): Multiple of the configs' training eps (at most 255).
            Defaults to 1.

    Returns:
        tuple[float, str]: The radius and its source.
    """
    if given is not None:
        return given, option
    eps = models_eps(labelled, option)
    if eps is None:
        return default, 'default: no training attack'
    times = {1: '', 2: 'twice '}.get(factor, f'{factor} times ')
    return min(factor * eps, 255.0), f"{times}the configs' training eps"


def measure_models(args, measure: Callable) -> dict:
    """Run ``measure`` on each model of :func:`~nofrost_mm.utils.cli.comparison_args`.

    Args:
        args (Namespace): Parsed arguments with ``labelled_models``
            (:func:`nofrost_mm.utils.cli.comparison_args`).
        measure (callable): ``measure(label, net, images, labels)`` -> a dict
            of per-sample tensors, on the seeded test subset.

    Returns:
        dict: ``{label: measure(...)}`` in the order of the arguments.
    """
    results = {}
    for label, config, ckpt in args.labelled_models:
        net, cfg = load_classifier(config, ckpt)
        images, labels = load_test_images(cfg, args.num_samples or None, args.seed)
        results[label] = measure(label, net, images, labels)
    return results


def save_comparison(args, figure, summary: dict) -> None:
    """Write the figure to ``--out`` and, with ``--json``, the summary."""
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(f'figure written to {args.out}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=2)


def load_classifier(
    config: str, checkpoint: str, device: str = 'cpu'
) -> Tuple[NormalizedClassifier, object]:
    """Build a config's model, load a checkpoint, and wrap it for [0, 1] input.

    Args:
        config (str): Config file.
        checkpoint (str): Checkpoint file.
        device (str): Device. Defaults to 'cpu'.

    Returns:
        tuple: The eval-mode :class:`NormalizedClassifier` and the config.

    Raises:
        CheckpointLoadError: If the checkpoint is missing, damaged, or does
            not fit the config's model.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.apis import get_model

    import nofrost_mm  # noqa: F401  (registers the plug-in's models)
    from nofrost_mm.utils.checkpoint_reader import load_into_model

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    # mmpretrain's own build (it moves a top-level data_preprocessor into the
    # model); the weights through the plug-in's checked reader, which names
    # a damaged file or one of another architecture
    model = get_model(cfg, pretrained=False)
    load_into_model(model, checkpoint, map_location='cpu')
    model.to(device).eval()
    net = NormalizedClassifier.from_preprocessor(model).eval()
    return net, cfg


def load_test_images(
    cfg, num_samples: Optional[int] = None, seed: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] images and labels of the config's test set (a seeded subset).

    Args:
        cfg (Config): Config with ``test_dataloader.dataset``.
        num_samples (int, optional): Subset size; None for all.
            Defaults to None.
        seed (int): Seed of the subset (as ``RobustTestLoop``'s).
            Defaults to 0.

    Returns:
        tuple[Tensor, Tensor]: Images (N, C, H, W) in [0, 1] and labels (N,).
    """
    from mmpretrain.registry import DATASETS

    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    if num_samples is not None:
        if not 1 <= num_samples <= len(dataset):
            raise ValueError(f'--num-samples must be in 1..{len(dataset)}, got {num_samples}')
        rng = np.random.default_rng(seed)
        dataset.get_subset_(np.sort(rng.choice(len(dataset), num_samples, replace=False)).tolist())
    samples = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([s['inputs'] for s in samples]).float() / 255.0
    labels = torch.cat([s['data_samples'].gt_label for s in samples])
    return images, labels


def _batches(n: int, batch_size: int, desc: bool = True):
    bar = ProgressBar(n) if desc else None
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))
        if bar is not None:
            bar.update(min(batch_size, n - start))
    if bar is not None:
        print()


def logit_margins(net, images, labels, batch_size: int = 128) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per sample (negative: misclassified), on the
    host (one copy per batch)."""
    out = []
    with torch.no_grad():
        for sl in _batches(len(images), batch_size, desc=False):
            z = net(images[sl])
            out.append(logit_margin(z, labels[sl].to(z.device)).cpu())
    return torch.cat(out)


def boundary_distances(
    net,
    images,
    labels,
    eps_max: float = 32.0,
    steps: int = 20,
    search_steps: int = 10,
    batch_size: int = 128,
) -> torch.Tensor:
    """L-inf distance (pixel units of 255) to the decision boundary along the
    adversarial direction.

    The direction is that of a PGD attack of radius ``eps_max`` (no random
    start), scaled to unit L-inf norm; the distance is the smallest ``t`` at
    which ``x + t * d`` changes the prediction, found by bisection over
    ``[0, eps_max]`` (a grid of 8 steps brackets the first crossing, then
    ``search_steps`` halvings).
    Misclassified samples get 0; samples whose prediction never changes
    within ``eps_max`` get ``inf`` (censored).

    Args:
        net (nn.Module): Model of [0, 1] images.
        images (Tensor): (N, C, H, W) in [0, 1].
        labels (Tensor): (N, ).
        eps_max (float): Search radius. Defaults to 32.
        steps (int): PGD steps for the direction. Defaults to 20.
        search_steps (int): Bisection steps. Defaults to 10.
        batch_size (int): Defaults to 128.
    """
    attack = PGDAttack(eps=eps_max, steps=steps, random_start=False)
    out = []
    with attack_context(net.classifier):
        for sl in _batches(len(images), batch_size):
            x, y = images[sl], labels[sl]
            adv = attack(net, x, y)
            delta = adv - x
            scale = delta.flatten(1).abs().amax(1).clamp_min(1e-12)
            d = delta / scale.view(-1, 1, 1, 1)

            def wrong(t):  # t: (B,) in pixel units
                xt = (x + d * (t / 255.0).view(-1, 1, 1, 1)).clamp(0, 1)
                with torch.no_grad():
                    return net(xt).argmax(1) != y

            # coarse grid: bracket the first crossing, then bisect it (on
            # the images' device, no host read inside the search)
            grid = torch.linspace(0, eps_max, 9, device=x.device)
            lo = torch.zeros(len(x), device=x.device)
            hi = torch.zeros(len(x), device=x.device)
            found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
            for k in range(1, len(grid)):
                w = wrong(grid[k].expand(len(x))) & ~found
                lo = torch.where(w, grid[k - 1], lo)
                hi = torch.where(w, grid[k], hi)
                found |= w
            for _ in range(search_steps):
                mid = torch.where(found, (lo + hi) / 2, torch.zeros_like(lo))
                w = wrong(mid)
                hi = torch.where(found & w, mid, hi)
                lo = torch.where(found & ~w, mid, lo)
            dist = torch.where(found, hi, torch.full_like(hi, float('inf')))
            dist = torch.where(
                wrong(torch.zeros(len(x), device=x.device)), torch.zeros_like(dist), dist
            )
            out.append(dist)
    return torch.cat(out)


def input_gradient_norms(
    net, images, labels, batch_size: int = 128, norm: str = 'l1'
) -> torch.Tensor:
    """Norm of the gradient of the cross-entropy loss w.r.t. the [0, 1] input.

    Args:
        norm (str): ``'l1'`` (dual of L-inf: the first-order loss increase
            per unit of L-inf radius) or ``'l2'``. Defaults to ``'l1'``.
    """
    if norm not in ('l1', 'l2'):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    out = []
    with attack_context(net.classifier):
        for sl in _batches(len(images), batch_size):
            x = images[sl].clone().requires_grad_(True)
            with torch.enable_grad():
                loss = torch.nn.functional.cross_entropy(net(x), labels[sl], reduction='sum')
                (g,) = torch.autograd.grad(loss, x)
            g = g.flatten(1)
            out.append(g.abs().sum(1) if norm == 'l1' else g.norm(dim=1))
    return torch.cat(out)


def local_lipschitz(
    net, images, eps: float = 8.0, steps: int = 10, batch_size: int = 128, seed: int = 0
) -> torch.Tensor:
    """Local Lipschitz estimate ``max ||f(x') - f(x)||_1 / ||x' - x||_inf``
    over the L-inf ball of radius ``eps`` (pixel units of 255), the measure
    of Yang et al. 2020 ("A closer look at accuracy vs. robustness"): the
    output change is maximised by projected sign-gradient ascent from a
    random start and the largest ratio over the iterates is kept (a lower
    bound of the true maximum); logits ``f``, distances in [0, 1] units.
    Each sample's random start comes from its key (``seed`` and its
    position in ``images``, :func:`sample_keys`): the same on any device
    and in any batch.
    """
    e, alpha = eps / 255.0, 2.5 * eps / 255.0 / steps
    out = []
    with attack_context(net.classifier):
        for sl in _batches(len(images), batch_size):
            x = images[sl]
            with torch.no_grad():
                fx = net(x)
            # the start of each sample from its seeded key: the same on any
            # device and in any batch
            keys = sample_keys(seed, torch.arange(sl.start, sl.stop, device=x.device))
            delta = (sample_uniform(keys, x.shape[1:], dtype=x.dtype) * 2 - 1) * e
            delta = (x + delta).clamp(0, 1) - x
            best = torch.zeros(len(x), device=x.device)
            for _ in range(steps):
                delta.requires_grad_(True)
                with torch.enable_grad():
                    diff = (net(x + delta) - fx).abs().sum(1)
                    # ascend the output change; the ratio of every iterate
                    # is a candidate (the max-norm's gradient would make
                    # ascent on the ratio itself oscillate at the ball's edge)
                    (g,) = torch.autograd.grad(diff.sum(), delta)
                dist = delta.detach().flatten(1).abs().amax(1).clamp_min(1e-12)
                best = torch.maximum(best, diff.detach() / dist)
                delta = (delta.detach() + alpha * g.sign()).clamp(-e, e)
                delta = (x + delta).clamp(0, 1) - x
            with torch.no_grad():
                diff = (net(x + delta) - fx).abs().sum(1)
                dist = delta.flatten(1).abs().amax(1).clamp_min(1e-12)
                best = torch.maximum(best, diff / dist)
            out.append(best)
    return torch.cat(out)


def summary(values: torch.Tensor) -> dict:
    """Mean, median, 10th/90th percentiles of the finite values, and the
    fraction of infinite ones."""
    finite = values[torch.isfinite(values)].double()
    stats = dict(n=len(values), censored=float((~torch.isfinite(values)).double().mean()))
    if len(finite):
        q = torch.quantile(finite, torch.tensor([0.1, 0.5, 0.9], dtype=torch.double))
        stats.update(
            mean=float(finite.mean()), p10=float(q[0]), median=float(q[1]), p90=float(q[2])
        )
    return stats
