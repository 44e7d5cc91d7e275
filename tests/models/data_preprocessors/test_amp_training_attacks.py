"""Training attacks under fp16 and bf16 autocast (``--amp``) are as strong as in fp32.

On a tiny BN ResNet made as confident as a well-trained net (logits x10),
naive fp16 autocast zeroes most input-gradient entries (checked here, so the
comparisons can fail); ``PGDDataPreprocessor.attack_inputs`` under CPU
autocast must leave at most 1 point more robust accuracy than in fp32 on
the same weights, 128 images, the final check in fp32. CW is checked at
logits x30, where a gradient scaled before the network overflows fp16.
"""
import pytest
import torch
import torch.nn.functional as F

from nofrost_mm.attacks import build_attack
from tests.attacks.toy import (clean_preprocess, confident_classifier, digits_8x8,
                              digits_batch, trained_classifier)
from tests.conftest import logged_warnings

# compares float results: run under other CPUs' float paths too
# (tools/misc/portability_check.sh selects `-m numerics`)
pytestmark = pytest.mark.numerics

N = 128
PRE = dict(type='PGDDataPreprocessor')
ATTACKS = {
    'PGD-10': (dict(type='PGDAttack', eps=8, steps=10), 10.),
    'FGSM-RS': (dict(type='FGSMRS', eps=8), 10.),
    'N-FGSM': (dict(type='NFGSM', eps=8), 10.),
    'TRADES-KL': (dict(type='PGDAttack', eps=8, steps=10, loss='kl',
                       random_start='normal'), 10.),
    'CW': (dict(type='CWLinf', eps=8, steps=10), 30.),
}
DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


@pytest.fixture(scope='module')
def data():
    return digits_8x8(N, 'test')


@pytest.fixture(scope='module')
def models():
    return {scale: confident_classifier(scale, data_preprocessor=PRE)
            for scale in (10., 30.)}


def _robust_accuracy(model, x, y):
    with torch.no_grad():  # fp32: the decision of record
        return (model(x, mode='tensor').argmax(1) == y).float().mean().item() * 100


def _attack(model, cfg, x, y, dtype=None):
    torch.manual_seed(0)  # the same random start in every precision
    with torch.autocast('cpu', dtype=dtype or torch.float16, enabled=dtype is not None):
        adv = model.data_preprocessor.attack_inputs(model, x, y, build_attack(cfg))
    return adv


@pytest.fixture(scope='module')
def fp32_results(models, data):
    x, y = data
    return {name: _robust_accuracy(models[scale], _attack(models[scale], cfg, x, y), y)
            for name, (cfg, scale) in ATTACKS.items()}


def test_naive_fp16_autocast_underflows_on_this_model(models, data):
    """The premise: without per-sample scaling most entries of the model's
    fp16 input gradient are exactly 0 (and almost none in fp32)."""
    x, y = data
    model = models[10.]
    net = model.data_preprocessor.normalized_classifier(model)
    zeros = {}
    for name, dtype in (('fp32', None), ('fp16', torch.float16)):
        xx = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.float16, enabled=dtype is not None):
            loss = F.cross_entropy(net(xx).float(), y, reduction='sum')
        zeros[name] = (torch.autograd.grad(loss, xx)[0] == 0).float().mean().item()
    assert zeros['fp16'] >= 0.2 and zeros['fp32'] < 0.1, zeros
    assert _robust_accuracy(model, x, y) > 85  # a real classifier


@pytest.mark.parametrize('precision', list(DTYPES))
@pytest.mark.parametrize('name', list(ATTACKS))
def test_training_attack_is_as_strong_under_autocast(models, data, fp32_results, name,
                                                     precision):
    x, y = data
    cfg, scale = ATTACKS[name]
    model = models[scale]
    adv = _attack(model, cfg, x, y, DTYPES[precision])
    assert adv.dtype == torch.float32 and 0 <= adv.min() and adv.max() <= 1
    bound = 24 if cfg['type'] == 'NFGSM' else 8  # N-FGSM: noise 2 eps + step eps
    assert (adv - x).abs().max() * 255 <= bound + 1e-3
    robust, fp32 = _robust_accuracy(model, adv, y), fp32_results[name]
    assert fp32 < 85, 'the fp32 attack breaks samples'
    assert robust <= fp32 + 1, f'{name} under {precision}: {robust:.1f}% vs fp32 {fp32:.1f}%'
    assert model.data_preprocessor.last_attack_precision == precision


def test_trades_kl_attack_under_bf16_on_an_ordinary_model():
    """TRADES's KL attack starts 0.001 from the image, where its gradient is
    below bf16's rounding of the logits: the reference and the first step run
    in fp32 (all in bf16, this model kept 6 points more robust accuracy and
    reached 15% less KL)."""
    model = trained_classifier('bn', data_preprocessor=dict(
        PRE, mean=[0.] * 3, std=[255.] * 3, num_classes=10))
    data = clean_preprocess(model, digits_batch(N, split='test'), training=False)
    x, y = data['inputs'], torch.cat([s.gt_label for s in data['data_samples']])
    net = model.data_preprocessor.normalized_classifier(model)
    cfg = ATTACKS['TRADES-KL'][0]
    results = {}
    for dtype in (None, torch.bfloat16):
        robust, kl = [], []
        for seed in range(2):
            torch.manual_seed(seed)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype is not None):
                adv = model.data_preprocessor.attack_inputs(model, x, y, build_attack(cfg))
            with torch.no_grad():
                logits = net(adv)
                kl.append(F.kl_div(logits.log_softmax(1), net(x).softmax(1),
                                   reduction='batchmean').item())
            robust.append(_robust_accuracy(model, adv, y))
        results[dtype] = sum(robust) / 2, sum(kl) / 2
    (robust32, kl32), (robust16, kl16) = results[None], results[torch.bfloat16]
    assert robust16 <= robust32 + 1 and kl16 >= 0.95 * kl32, results


class _NotAmpSafe:
    """An attack that does not declare itself safe in reduced precision."""

    def __init__(self):
        self.dtypes = []

    def __call__(self, model_fn, images, labels):
        with torch.enable_grad():
            x = images.clone().requires_grad_(True)
            logits = model_fn(x)
            self.dtypes.append(logits.dtype)
            grad, = torch.autograd.grad(F.cross_entropy(logits, labels), x)
        return (images + 8 / 255 * grad.sign()).clamp(0, 1)


def test_an_attack_not_known_to_be_safe_runs_in_fp32_and_says_so(models, data):
    x, y = data
    model = models[10.]
    attack = _NotAmpSafe()
    with logged_warnings(_current_logger()) as messages, \
            torch.autocast('cpu', dtype=torch.bfloat16):
        for _ in range(2):
            model.data_preprocessor.attack_inputs(model, x[:8], y[:8], attack)
    assert attack.dtypes == [torch.float32] * 2  # autocast was off inside
    assert model.data_preprocessor.last_attack_precision == 'fp32'
    fp32_lines = [m for m in messages if '_NotAmpSafe runs in fp32 under bf16' in m]
    assert len(fp32_lines) == 1, messages  # one line, not one per batch


def _current_logger():
    from mmengine.logging import MMLogger
    return MMLogger.get_current_instance()


def test_an_fp16_overflow_attacks_the_batch_again_in_fp32(models, data):
    """A network whose backward amplifies the gradient beyond fp16's range:
    the batch is attacked again in fp32 (one log line), never left unmoved."""
    x, y = data
    model = confident_classifier(10., data_preprocessor=PRE)
    def amplify(module, inputs, out):  # x 2**20 on the way back (forward unchanged)
        if out.requires_grad:
            out.register_hook(lambda grad: grad * 2.**20)

    model.backbone.conv1.register_forward_hook(amplify)
    attack = dict(type='PGDAttack', eps=8, steps=3, random_start=False)
    fp32 = _attack(model, attack, x[:16], y[:16])
    with logged_warnings(_current_logger()) as messages:
        for _ in range(2):
            fp16 = _attack(model, attack, x[:16], y[:16], torch.float16)
    assert model.data_preprocessor.last_attack_precision == 'fp32'
    assert torch.equal(fp16, fp32)
    assert len([m for m in messages if 'overflowed in fp16' in m]) == 1, messages
