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

PRE = dict(type='PGDDataPreprocessor', eps=8, attack=dict(type='FGSMRS'))


@pytest.fixture(scope='module')
def data():
    x, y = digits_8x8(128, 'test')
    return x, y, [DataSample().set_gt_label(int(label)) for label in y]


def _grads(model, x, y, dtype=None, safe=True):
    """GradAlign's clean and noisy input gradients (the noise fixed)."""
    logits = _ImageLogits(
        model, model.data_preprocessor.normalized_classifier(model).normalize, None
    )
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
    model = confident_classifier(10.0, data_preprocessor=PRE, grad_align_lambda=0.2)
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


def test_grad_align_weight_gradient_under_fp16_points_where_fp32s_points(data):
    """The term's double backprop under fp16: its gradient with respect to
    the weights (what training steps along) is fp32's up to rounding."""
    x, y, samples = data
    model = confident_classifier(10.0, data_preprocessor=PRE, grad_align_lambda=0.2)
    weights = model.backbone.conv1.weight, model.head.fc.weight
    grads = {}
    for dtype in (None, torch.float16):
        torch.manual_seed(0)
        with torch.autocast('cpu', dtype=torch.float16, enabled=dtype is not None):
            reg, _, _ = model.grad_align(x, samples)
        grads[dtype] = torch.autograd.grad(reg, weights)
    for got, ref in zip(grads[torch.float16], grads[None]):
        # second derivatives through fp16: cosine 0.93-0.99 and conv1's norm ratio 1.06-1.50
        # across CPU float paths (1.50 under aten-default with oneDNN SSE4.1); the old unscaled
        # term was 30x off and turned (cosine -0.35)
        assert F.cosine_similarity(got.flatten(), ref.flatten(), dim=0) > 0.9
        assert 0.6 < got.norm() / ref.norm() < 1.75


def test_no_sample_is_dropped_silently(data):
    """At logits x10 and x30 every sample keeps a gradient in every precision
    (the fp32 code before dropped 99 and 114 of 128: their gradients' squared
    norms underflowed); a sample is left out only where the float64 softmax
    saturates (logits x1000), and counted in ``grad_align_dropped``."""
    x, y, samples = data
    for scale in (10.0, 30.0):
        model = confident_classifier(scale, data_preprocessor=PRE, grad_align_lambda=0.2)
        for dtype in (None, torch.float16, torch.bfloat16):
            torch.manual_seed(0)
            with torch.autocast('cpu', dtype=dtype or torch.float16, enabled=dtype is not None):
                reg, cos, dropped = model.grad_align(x, samples)
            assert dropped == 0 and 0 < cos < 1 and torch.isfinite(reg), (scale, dtype)
            weights = model.backbone.conv1.weight, model.head.fc.weight
            assert all(torch.isfinite(g).all() for g in torch.autograd.grad(reg, weights))
    model = confident_classifier(1000.0, data_preprocessor=PRE, grad_align_lambda=0.2)
    zero = (_grads(model, x, y)[0].flatten(1).abs().amax(1) == 0).sum()  # eval mode
    model.train()
    model(x, samples, mode='loss', adv_inputs=x)
    assert 0 < zero < len(y) and model.adv_log_vars['grad_align_dropped'] >= zero


def _confident_batch(model, x, y, n=48):
    """Samples the model (eval mode: per-sample logits) gets right by a logit
    margin in [20, 80]: every fp32 logit gradient of the mean loss is then
    below fp16's smallest number, and above fp32's."""
    with torch.no_grad():
        logits = model.eval()(x, mode='tensor')
    top2 = logits.topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]
    keep = ((logits.argmax(1) == y) & (margin > 20) & (margin < 80)).nonzero()[:n, 0]
    assert len(keep) >= 32, len(keep)
    return x[keep], y[keep], [DataSample().set_gt_label(int(label)) for label in y[keep]]


def _awp(model, x, samples, dtype=None):
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=dtype or torch.float16, enabled=dtype is not None):
        return {name: v for name, _, v in model.awp_perturbation(x, x, samples)}


def test_awp_perturbation_under_fp16_points_where_fp32_points(data):
    """On a batch of confident samples (eval mode: each sample's logits its
    own) AWP's weight gradient is 0 in a naive fp16 backward; scaled, every
    perturbed tensor points where fp32's does."""
    x, y, _ = data
    model = confident_classifier(10.0, data_preprocessor=PRE, awp_gamma=0.01)
    x, y, samples = _confident_batch(model, x, y)
    fp32 = _awp(model, x, samples)
    got = _awp(model, x, samples, torch.float16)
    assert got.keys() == fp32.keys()
    cos = {
        name: F.cosine_similarity(got[name].flatten(), fp32[name].flatten(), dim=0) for name in fp32
    }
    assert min(cos.values()) > 0.98, cos  # 0.988-0.999 across CPU float paths
    # the premise: unscaled, the weights' gradient is lost
    params = [p for n, p in model.named_parameters() if n in fp32]
    with torch.autocast('cpu', dtype=torch.float16):
        losses, _ = model._training_losses(x, x, samples)
        loss, _ = model.parse_losses(losses)
    naive = torch.autograd.grad(loss, params, allow_unused=True)
    assert all(g is None or not (g.abs() > 0).any() for g in naive)


def test_awp_perturbation_under_bf16_is_computed_in_fp32_and_says_so(data):
    """bf16 turned some tensors' scaled gradient by 15-43 degrees on this
    batch (by the CPU's float path): AWP's pass runs in fp32, one log line."""
    x, y, _ = data
    model = confident_classifier(10.0, data_preprocessor=PRE, awp_gamma=0.01)
    x, y, samples = _confident_batch(model, x, y)
    fp32 = _awp(model, x, samples)
    with logged_warnings(MMLogger.get_current_instance()) as messages:
        for _ in range(2):
            got = _awp(model, x, samples, torch.bfloat16)
    assert all(torch.equal(got[n], fp32[n]) for n in fp32)
    assert len([m for m in messages if m.startswith('AWP') and 'bf16' in m]) == 1


def _amplify_stem_gradient(model):
    def amplify(module, inputs, out):  # x 2**20 on the way back (forward unchanged)
        if out.requires_grad:
            out.register_hook(lambda grad: grad * 2.0**20)

    model.backbone.conv1.register_forward_hook(amplify)


def test_fp16_overflows_are_taken_again_in_fp32(data):
    x, y, samples = data
    x, y, samples = x[:32], y[:32], samples[:32]
    model = confident_classifier(10.0, data_preprocessor=PRE, awp_gamma=0.01, grad_align_lambda=0.2)
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
