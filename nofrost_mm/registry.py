"""Registries the plug-in adds; everything else goes into mmpretrain's own."""

from mmengine.registry import Registry

# Adversarial attacks built from config (training and evaluation), e.g.
# ATTACKS.build(dict(type='PGD', eps=8, steps=20)). Sizes are in pixel units of 255.
ATTACKS = Registry('attack', scope='nofrost_mm', locations=['nofrost_mm.attacks'])
