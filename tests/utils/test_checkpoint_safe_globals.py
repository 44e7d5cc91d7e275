import io
import pickle

import numpy as np
import pytest
import torch


def _save(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_mmengine_message_hub_loads_weights_only():
    from mmengine.logging import MessageHub

    import nofrost_mm  # noqa: F401  (registers the allow-list)

    hub = MessageHub.get_instance('test_safe_globals')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.get_scalar('train/loss').mean()  # fills statistics_methods
    ckpt = dict(
        message_hub=hub.state_dict(), meta=dict(seed=np.int64(3)), state_dict=dict(w=torch.ones(2))
    )
    loaded = torch.load(_save(ckpt), weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(0.375)
    assert loaded['meta']['seed'] == 3


class _Evil:
    # getattr on an allow-listed class, reaching a method that is not a statistic

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer

        return (getattr, (HistoryBuffer, 'update'))


def test_getattr_is_limited_to_history_buffer_methods():
    import nofrost_mm  # noqa: F401

    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(_save({'x': _Evil()}), weights_only=True)


def test_weights_only_still_refuses_arbitrary_objects():
    import argparse

    import nofrost_mm  # noqa: F401

    with pytest.raises(pickle.UnpicklingError):
        torch.load(_save({'x': argparse.Namespace(a=1)}), weights_only=True)
