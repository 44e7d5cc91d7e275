"""LogOnce: a message that would repeat every step is logged once."""

import logging

from mmengine.logging import MMLogger

from nofrost_mm.utils import LogOnce


def test_each_distinct_message_is_logged_once(capsys):
    logger = MMLogger.get_instance('test_log_once', log_level='INFO')
    written = []
    handler = logging.Handler()
    handler.emit = lambda record: written.append((record.levelno, record.getMessage()))
    logger.addHandler(handler)
    try:
        log_once = LogOnce(logging.INFO)
        said = [log_once('FAB runs in fp32') for _ in range(3)]
        said.append(log_once('Square runs in fp32'))
        said.append(log_once('FAB runs in fp32'))
    finally:
        logger.removeHandler(handler)
    assert said == [True, False, False, True, False]
    assert written == [(logging.INFO, 'FAB runs in fp32'), (logging.INFO, 'Square runs in fp32')]


def test_two_owners_each_say_it_once():
    first, second = LogOnce(), LogOnce()
    assert first('overflow') and second('overflow')
    assert first.level == logging.WARNING
