# ImageNet-C (Hendrycks & Dietterich 2019) as released: data/imagenet-c/<corruption>/<severity>/<wnid>/*.JPEG
# (224 x 224 images, already corrupted). Test-only: put it after an ImageNet model/dataset base and run
#   python tools/test.py CONFIG CKPT --out imagenet-c.json
# Reports accuracy per corruption and severity, their mean, and mCE normalised by AlexNet.
data_preprocessor = dict(
    num_classes=1000, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='ImageNetC',
        data_root='data/imagenet-c',
        corruptions='imagenet-c',  # the 15 of the benchmark; or a list of names
        severities=[1, 2, 3, 4, 5],
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='PackInputs', meta_keys=('sample_idx', 'corruption', 'severity')),
        ],
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='CorruptionAccuracy', mce=True)
