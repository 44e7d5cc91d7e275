# scikit-learn's bundled handwritten digits, upsampled to 32x32 (no download).
# Train on `train` (1149), validate (choose recipes, best checkpoints) on `val`
# (288), report on `test` (360): the test split is never used for choices.
dataset_type = 'SklearnDigits'
data_preprocessor = dict(
    num_classes=10,
    mean=[0., 0., 0.],
    std=[255., 255., 255.],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=120,
    num_workers=0,
    dataset=dict(type=dataset_type, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = dict(
    batch_size=120,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = val_evaluator
