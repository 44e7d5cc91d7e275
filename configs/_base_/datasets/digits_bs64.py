# scikit-learn's bundled handwritten digits, upsampled from 8x8 to 16x16 (no
# download). 16 px keeps every source pixel and makes a training or attack
# step 3.2-3.8x cheaper than 32 px (configs/demo/README.md).
# Train on `train` (1149), validate (choose recipes, best checkpoints) on `val`
# (288), report on `test` (360): the test split is never used for choices.
dataset_type = 'SklearnDigits'
img_size = 16
data_preprocessor = dict(
    num_classes=10, mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=False
)

train_pipeline = [
    dict(type='RandomCrop', crop_size=16, padding=1),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

# The images are in memory: no worker processes. persistent_workers=False is
# spelt out because mmpretrain's own tools/train.py defaults it to True, which
# torch refuses with num_workers=0.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='train', img_size=img_size, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=120,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='val', img_size=img_size, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1,))

test_dataloader = dict(
    batch_size=120,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='test', img_size=img_size, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = val_evaluator
