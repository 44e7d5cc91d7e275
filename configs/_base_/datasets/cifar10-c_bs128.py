# CIFAR-10-C (Hendrycks & Dietterich 2019) as released: data/cifar10-c/<corruption>.npy
# (5 severities x 10000 images, 32 x 32 x 3 RGB) and labels.npy. Test-only; run
#   python tools/test.py CONFIG CKPT --out cifar10-c.json
# Reports accuracy per corruption and severity and their mean (mCE is ImageNet's, not reported).
data_preprocessor = dict(
    num_classes=10, mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255], to_rgb=False
)

test_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(
        type='CIFAR10C',
        data_root='data/cifar10-c',
        corruptions='imagenet-c',
        severities=[1, 2, 3, 4, 5],
        pipeline=[dict(type='PackInputs', meta_keys=('sample_idx', 'corruption', 'severity'))],
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='CorruptionAccuracy')
