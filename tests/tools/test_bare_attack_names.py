"""tools/test.py --attacks with bare torchattacks names on an eps-0.3 config:
each attack runs at the training eps with the plug-in's step rule, and what
it ran with is logged before it runs and written to --out."""

import json

# the shared tiny runs of the config families users have, each trained once
# per session
from tests.tools.user_path_runs import run_main, trained, user_path_folder  # noqa: F401


def test_bare_names_follow_the_training_eps_with_their_steps(trained, tmp_path, monkeypatch, capfd):
    r = trained('stock')  # mmpretrain's lenet5_mnist.py, eps 76.5/255 (0.3)
    out = tmp_path / 'results.json'
    # tools/test.py's main in this process (its command on this config:
    # tests/tools/test_stock_mmpretrain_config.py)
    run_main(
        monkeypatch,
        'tools/test.py',
        [
            r.config,
            r.checkpoint,
            '--work-dir',
            tmp_path,
            '--out',
            out,
            '--num-samples',
            '4',
            '--attacks',
            'PGD',
            'FGSM',
        ],
    )
    console = capfd.readouterr()
    results = json.loads(out.read_text())
    # torchattacks' PGD kept its 2/255 step: 10 steps travelled 20 of 76.5
    assert results['attack_settings'] == dict(
        PGD=dict(eps=76.5, step=8.05, steps=10, restarts=1), FGSM=dict(eps=76.5, restarts=1)
    )
    line = (
        'attacks (sizes in pixel units of 255): PGD: eps 76.5, step 8.05, '
        '10 steps, 1 restart; FGSM: eps 76.5, 1 restart'
    )
    (log,) = tmp_path.glob('*/*.log')
    for text in (console.out + console.err, log.read_text()):
        assert line in text
        # before the first attack's progress
        assert text.index(line) < text.index('robust test: 1 batch')
    assert 0 <= results['robust/PGD'] <= results['robust/clean'] <= 100
