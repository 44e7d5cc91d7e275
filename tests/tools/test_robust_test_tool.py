"""tools/test.py and tools/dist_test.sh with attacks, on a checkpoint trained here."""
import json

import pytest

from tests.conftest import REPO_ROOT, run_tool

CONFIG = 'configs/demo/resnet18-w16_1xb64_digits.py'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('robust') / 'train'
    run_tool(['tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
              'train_cfg.max_epochs=5', 'train_cfg.val_interval=5'])
    return work_dir / 'epoch_5.pth'


def test_one_run_reports_clean_attacks_worst_case_and_guard(checkpoint, tmp_path):
    out = tmp_path / 'results.json'
    proc = run_tool([
        'tools/test.py', CONFIG, checkpoint, '--work-dir', tmp_path, '--out', out,
        '--num-samples', '60', '--attacks', 'FGSM',
        "{'type': 'PGD', 'eps': 8, 'alpha': 2, 'steps': 20}",
        "{'type': 'PGDAttack', 'eps': 8, 'step_size': 2, 'steps': 20}",
        # one tiny step: weaker than FGSM although iterative -> masking warning
        "{'type': 'PGD', 'eps': 8, 'alpha': 0.5, 'steps': 1, 'name': 'PGD-tiny'}",
        # eps 24 breaks this model within APGD-CE, so the run stays short
        "{'type': 'AutoAttack', 'eps': 24, 'version': 'standard'}"])
    res = json.loads(out.read_text())
    assert res['robust/num_samples'] == 60
    assert res['robust/clean'] > 50  # the checkpoint learned something
    for name in ('FGSM', 'PGD-20', 'PGDAttack-20', 'PGD-tiny', 'AutoAttack'):
        assert 0 <= res[f'robust/{name}'] <= res['robust/clean']
        assert res[f'robust/time_s/{name}'] > 0
    assert res['robust/PGD-20'] < res['robust/clean']
    # the plug-in's PGD-20 against torchattacks.PGD on the same samples
    assert abs(res['robust/PGDAttack-20'] - res['robust/PGD-20']) <= 1
    assert res['robust/worst_case'] <= min(
        res[f'robust/{n}'] for n in ('FGSM', 'PGD-20', 'PGDAttack-20', 'AutoAttack'))
    assert res['robust/PGD-tiny'] > res['robust/FGSM']
    msg = (f"PGD-tiny ({res['robust/PGD-tiny']:.2f}%) is above that under the "
           f"weaker FGSM ({res['robust/FGSM']:.2f}%)")
    assert [w for w in res['warnings'] if msg in w]
    log = proc.stdout + proc.stderr
    assert 'possible gradient masking' in log and 'ETA' in log


def test_dist_test_matches_one_process(checkpoint, tmp_path):
    args = ['--num-samples', '50', '--attacks', 'FGSM',
            "{'type': 'PGD', 'eps': 8, 'alpha': 2, 'steps': 5}",
            "{'type': 'APGD', 'eps': 8, 'steps': 5}",
            '--cfg-options', 'test_dataloader.batch_size=16']
    run_tool(['tools/test.py', CONFIG, checkpoint, '--work-dir', tmp_path / 'one',
              '--out', tmp_path / 'one.json', *args])
    proc = run_tool(['bash', 'tools/dist_test.sh', CONFIG, checkpoint, 2,
                     '--work-dir', tmp_path / 'two', '--out', tmp_path / 'two.json',
                     *args], env={'PORT': '29517'})
    one = json.loads((tmp_path / 'one.json').read_text())
    two = json.loads((tmp_path / 'two.json').read_text())
    accuracy = [k for k in one if '/time_s/' not in k]
    assert {k: one[k] for k in accuracy} == {k: two[k] for k in accuracy}
    assert one['robust/PGD-5'] < one['robust/clean']
    # rank 0 alone draws the progress bar (rank 1 has 3 batches, rank 0 two)
    log = proc.stdout + proc.stderr
    assert '2/2' in log and '3/3' not in log


def test_bad_attack_fails_before_the_model_is_loaded(checkpoint, tmp_path):
    # the other bad configs are covered in-process by the attack/loop tests
    proc = run_tool(['tools/test.py', CONFIG, checkpoint, '--work-dir', tmp_path,
                     '--attacks', "{'type': 'PGD', 'epsilon': 8}"], check=False)
    assert proc.returncode != 0
    assert "unknown argument(s) ['epsilon']; torchattacks.PGD accepts" in proc.stderr
    assert 'Load checkpoint' not in proc.stdout + proc.stderr


def test_corrupted_evaluation_gives_per_corruption_accuracy(checkpoint, tmp_path):
    config = tmp_path / 'digits_c.py'
    config.write_text(f"""_base_ = ['{(REPO_ROOT / CONFIG).as_posix()}']
test_dataloader = dict(dataset=dict(
    _delete_=True, type='CorruptedDataset',
    corruptions=['gaussian_noise', 'glass_blur', 'fog'], severities=[1, 5],
    dataset=dict(type='SklearnDigits', split='test', indices=20, pipeline=[
        dict(type='ImageCorruption'),
        dict(type='PackInputs', meta_keys=('sample_idx', 'corruption', 'severity'))])))
test_evaluator = dict(_delete_=True, type='CorruptionAccuracy')
""")
    out = tmp_path / 'corruption.json'
    run_tool(['tools/test.py', config, checkpoint, '--work-dir', tmp_path, '--out', out])
    res = json.loads(out.read_text())
    for c in ('gaussian_noise', 'glass_blur', 'fog'):
        for s in (1, 5):
            assert 0 <= res[f'corruption/{c}/{s}'] <= 100
        assert res[f'corruption/{c}'] == pytest.approx(
            (res[f'corruption/{c}/1'] + res[f'corruption/{c}/5']) / 2)
    assert 0 <= res['corruption/mean_accuracy'] <= 100
