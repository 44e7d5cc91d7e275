# NoFrost* (Wang et al., ICML 2022, "comprehensive robustness"): NoFrost (PGD-AT of NF-ResNet-50,
# nf-resnet50_8xb32_in1k_pgdat.py) trained on several views of every ImageNet image: the
# original, DeepAugment's EDSR and CAE copies and a stylized (texture-debiased) copy, the loss
# averaged over the views, each view with its clean and adversarial terms
# (0.5 * CE(view) + 0.5 * CE(PGD-10(view))).
#
# The views are pre-generated folders with the same relative paths as data/imagenet/train:
#   data/imagenet-DeepAug-EDSR/train, data/imagenet-DeepAug-CAE/train: the scripts
#     DeepAugment/EDSR_distort_imagenet.py and DeepAugment/CAE_distort_imagenet.py of
#     https://github.com/hendrycks/imagenet-r (set their ImageNet train path and save path;
#     --total-workers/--worker-number split the classes over GPUs);
#   data/imagenet-stylized/train: Stylized-ImageNet (https://github.com/rgeirhos/Stylized-ImageNet,
#     AdaIN style transfer with the Painter-by-Numbers styles), the shape/texture-cue images of
#     Li et al. 2021, "Shape-Texture Debiased Neural Network Training"
#     (https://github.com/LiYingwei/ShapeTextureDebiasedTraining).
# A view file that is not there stops training with its path and view name. Views of another
# size are resized to the original's, then all views of a sample get the same crop and flip.
#
# 8 GPUs x 32 images = 8 samples x 4 views (the NoFrost memory per GPU; lr 0.1 for 256 images
# per step), 30 epochs: every image is seen 4 times per epoch, about the 90 epochs of NoFrost
# in images (the official CRT_TDAT.py also trains 30 epochs on its 3 views).
# Differs from the official CRT_TDAT.py (nf-resnet50_8xb32_in1k_nofrost-star-official.py), which
# attacks only the original view (loss = (CE(clean) + CE(DeepAug) + CE(texture) + CE(adv)) / 4:
# an adversarial share of 25% against 50% here), draws its DeepAugment view from EDSR only (its
# dataset pairs ImageNet index i with index i of EDSR + CAE and is as long as ImageNet, so no
# CAE index is reached), crops each view independently, and makes its "texture-debiased" view
# from the original image (crop scale 0.64-1, colour distortion) instead of stylized images.
_base_ = ['./nf-resnet50_8xb32_in1k_pgdat.py']

train_dataloader = dict(
    batch_size=8,  # samples per GPU; x 4 views = 32 images
    # N samples x V views -> N*V images: the batch's mean loss is the mean of the views' losses
    collate_fn=dict(type='multi_view_collate'),
    dataset=dict(
        _delete_=True,
        type='MultiViewDataset',
        views=dict(
            deepaugment_edsr='data/imagenet-DeepAug-EDSR/train',
            deepaugment_cae='data/imagenet-DeepAug-CAE/train',
            stylized='data/imagenet-stylized/train',
        ),
        dataset=_base_.train_dataloader.dataset,
    ),
)

param_scheduler = dict(T_max=30, end=30)
train_cfg = dict(max_epochs=30)
# PGD-5 robust validation after epochs 1, 4, ..., 28 and in the last 10% (NoFrost: every 10 of 90)
custom_hooks = [dict(_base_.at_hook, adv_val_interval=3)]
# --auto-scale-lr counts samples (8 per GPU), not images: 64 samples x 4 views = 256 images
# at lr 0.1
auto_scale_lr = dict(base_batch_size=64)
