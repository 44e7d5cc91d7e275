"""GradAlign's input gradients and AWP's weight gradient under fp16 / bf16 autocast.

On the tiny BN ResNet at logits x10 (naive fp16 autocast zeroes most input-
gradient entries: checked), both must point where fp32's point, drop no
sample silently, and take an fp16 overflow again in fp32 with one log line.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.structures import DataSample

from nofrost_mm.models.classifiers.adv_image_classifier import _ImageLogits
from tests.attacks.toy import confident_classifier, digits_8x8
from tests.conftest import logged_warnings

PRE = dict(type='PGDDataPreprocessor', attack=dict(type='FGSMRS', eps=8))


@pytest.fixture(scope='module')
def data():
    x, y = digits_8x8(128, 'test')
    return x, y, [DataSample().set_gt_label(int(label)) for label in y]


def _grads(model, x, y, dtype=None, safe=True):
    """GradAlign's clean and noisy input gradients (the noise fixed)."""
    logits = _ImageLogits(model, model.data_preprocessor.normalized_classifier(model)
                          .normalize, None)
    noisy = (x + 8 / 255 * torch.linspace(-1, 1, x.numel()).view_as(x)).clamp(0, 1)
    with torch.autocast('cpu', dtype=dtype or torch.float16, enabled=dtype is not None):
        if safe:
            return model._grad_align_grads(logits, x, noisy, y)
        out = []
        for images in (x, noisy):  # what the classifier did before: no scaling
            images = images.clone().requires_grad_(True)
            loss = F.cross_entropy(logits(images).float(), y, reduction='sum')
            out.append(torch.autograd.grad(loss, images)[0])
        return out


def _cosines(a, b):
    a, b = a.detach().flatten(1).double(), b.detach().flatten(1).double()
    a = a / a.abs().amax(1, keepdim=True).clamp_min(1e-300)
    b = b / b.abs().amax(1, keepdim=True).clamp_min(1e-300)
    return F.cosine_similarity(a, b, dim=1)


def test_grad_align_gradients_under_fp16_point_where_fp32_points(data):
    x, y, _ = data
    model = confident_classifier(10., data_preprocessor=PRE, grad_align_lambda=0.2)
    fp32 = _grads(model, x, y)
    naive = _grads(model, x, y, torch.float16, safe=False)
    fp16 = _grads(model, x, y, torch.float16)
    for ref, bad, got in zip(fp32, naive, fp16):
        assert (bad == 0).float().mean() >= 0.2  # the premise: it underflows
        alive = ref.flatten(1).abs().amax(1) > 0  # fp32's zero rows have no direction
        cos, cos_naive = _cosines(got, ref)[alive], _cosines(bad, ref)[alive]
        assert (got.flatten(1)[alive].abs().amax(1) > 0).all()  # nothing lost
        # fp16's rounding of the logits turns a few samples' gradients a little
        # (as at logits x1, where nothing underflows); underflow turned most
        assert (cos > 0.99).float().mean() >= 0.9 and cos.median() > 0.99, cos.sort()[0][:8]
        assert (cos_naive > 0.99).float().mean() < 0.5


def test_no_sample_is_dropped_silently(data):
    """Samples are dropped only where the gradient is exactly 0 (at logits
    x30 most are, in fp32 too), and counted in ``grad_align_dropped``; a
    gradient whose squared norm underflows (logits x10) is not dropped."""
    x, y, samples = data
    for scale in (10., 30.):
        model = confident_classifier(scale, data_preprocessor=PRE, grad_align_lambda=0.2)
        zero_rows = {}
        for name, dtype in (('fp32', None), ('fp16', torch.float16),
                            ('bf16', torch.bfloat16)):
            torch.manual_seed(0)
            with torch.autocast('cpu', dtype=dtype or torch.float16,
                                enabled=dtype is not None):
                _, cos, dropped = model.grad_align(x, samples)
            clean = _grads(model, x, y, dtype)[0]
            zero_rows[name] = int((clean.flatten(1).abs().amax(1) == 0).sum())
            assert dropped >= zero_rows[name] and 0 < cos <= 1, (scale, name)
            if name == 'fp32':
                # the noisy images may lose a few more rows; never most of them
                assert dropped <= zero_rows[name] + 0.1 * len(y), (scale, int(dropped))
                fp32_dropped = int(dropped)
            else:
                assert dropped <= fp32_dropped + 0.02 * len(y), (scale, name, int(dropped))
        assert zero_rows['fp16'] <= zero_rows['fp32'] + 2, zero_rows
    assert fp32_dropped > len(y) // 2  # at x30: the count is exercised
    # and it reaches the training log
    model.train()
    model(x, samples, mode='loss', adv_inputs=x)
    assert model.adv_log_vars['grad_align_dropped'] > len(y) // 2


def _confident_batch(model, x, y, n=64):
    """Samples the model gets right by a logit margin > 20 (train-mode BN)."""
    with torch.no_grad():
        model.train()
        logits = model(x, mode='tensor')
    top2 = logits.topk(2, dim=1).values
    keep = ((logits.argmax(1) == y) & (top2[:, 0] - top2[:, 1] > 20)).nonzero()[:n, 0]
    assert len(keep) == n
    return x[keep], y[keep], [DataSample().set_gt_label(int(label)) for label in y[keep]]


def _awp(model, x, samples, dtype=None):
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=dtype or torch.float16, enabled=dtype is not None):
        return {name: v for name, _, v in model.awp_perturbation(x, x, samples)}


@pytest.mark.parametrize('dtype,bound', [(torch.float16, 0.99), (torch.bfloat16, 0.98)])
def test_awp_perturbation_under_autocast_points_where_fp32_points(data, dtype, bound):
    x, y, _ = data
    model = confident_classifier(10., data_preprocessor=PRE, awp_gamma=0.01)
    x, y, samples = _confident_batch(model, x, y)
    fp32 = _awp(model, x, samples)
    got = _awp(model, x, samples, dtype)
    assert got.keys() == fp32.keys()
    cos = {name: F.cosine_similarity(got[name].flatten(), fp32[name].flatten(), dim=0)
           for name in fp32}
    assert min(cos.values()) > bound, cos
    if dtype == torch.float16:  # the premise: unscaled, most weights turn away
        params = [p for n, p in model.named_parameters() if n in fp32]
        with torch.autocast('cpu', dtype=torch.float16):
            losses, _ = model._training_losses(x, x, samples)
            loss, _ = model.parse_losses(losses)
        naive = torch.autograd.grad(loss, params, allow_unused=True)
        naive_cos = [F.cosine_similarity(g.flatten(), fp32[n].flatten(), dim=0)
                     for n, g in zip(fp32, naive) if g is not None]
        assert sum(float(c) < 0.9 for c in naive_cos) >= len(naive_cos) // 2, naive_cos


def _amplify_stem_gradient(model):
    def amplify(module, inputs, out):  # x 2**20 on the way back (forward unchanged)
        if out.requires_grad:
            out.register_hook(lambda grad: grad * 2.**20)

    model.backbone.conv1.register_forward_hook(amplify)


def test_fp16_overflows_are_taken_again_in_fp32(data):
    x, y, samples = data
    x, y, samples = x[:32], y[:32], samples[:32]
    model = confident_classifier(10., data_preprocessor=PRE, awp_gamma=0.01,
                                 grad_align_lambda=0.2)
    _amplify_stem_gradient(model)
    logger = MMLogger.get_current_instance()
    fp32 = _grads(model, x, y), _awp(model, x, samples)
    with logged_warnings(logger) as messages:
        for _ in range(2):
            fp16 = _grads(model, x, y, torch.float16), _awp(model, x, samples, torch.float16)
    for a, b in zip(fp32[0], fp16[0]):
        assert torch.equal(a, b)
    assert all(torch.equal(fp32[1][n], fp16[1][n]) for n in fp32[1])
    assert len([m for m in messages if m.startswith('GradAlign') and 'fp32' in m]) == 1
    assert len([m for m in messages if m.startswith('AWP') and 'fp32' in m]) == 1
