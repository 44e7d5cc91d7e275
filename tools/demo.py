"""`make demo`: PLACEHOLDER until the NoFrost demo lands.

Trains the small BN ResNet of configs/demo on the bundled digits for a few
epochs on CPU with tools/train.py, tests it with tools/test.py and prints the
result. The real demo (standard vs BN-AT vs NoFrost, robust accuracy) replaces it.
"""
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'
WORK_DIR = 'work_dirs/demo/placeholder'


def main():
    print('NOTE: this is a placeholder demo (standard training only); the '
          'NoFrost comparison is not built yet.', flush=True)
    subprocess.check_call([sys.executable, 'tools/train.py', CONFIG,
                           '--work-dir', WORK_DIR, '--cfg-options',
                           'train_cfg.max_epochs=5'], cwd=REPO)
    out = osp.join(WORK_DIR, 'test_metrics.json')
    subprocess.check_call([sys.executable, 'tools/test.py', CONFIG,
                           osp.join(WORK_DIR, 'epoch_5.pth'), '--work-dir',
                           WORK_DIR, '--out', out], cwd=REPO)
    with open(osp.join(REPO, out)) as f:
        metrics = json.load(f)
    print('\n| model | epochs | clean test acc (%) |\n| --- | --- | --- |')
    print(f"| ResNet-18 (w16), BN, standard | 5 | {metrics['accuracy/top1']:.2f} |")


if __name__ == '__main__':
    main()
