"""A Config that formats its text once per content, not once per checkpoint."""

from mmengine.config import Config


class TextCachedConfig(Config):
    """``mmengine.config.Config`` whose ``pretty_text`` is computed once.

    mmengine formats the whole config with yapf (a tenth of a second for a
    demo config on a small CPU) for the log, the dumped config, the runtime
    info and the ``meta['cfg']`` of *every* checkpoint: dozens of times in a
    short run with the catastrophic-overfitting guard. The text is kept with the content it was made from and made
    again only when the content changes, so it is always the text mmengine
    would write.
    """

    @classmethod
    def of(cls, cfg: Config) -> 'TextCachedConfig':
        """The same config (shared content) as a :class:`TextCachedConfig`."""
        if isinstance(cfg, cls):
            return cfg
        cached = cls.__new__(cls)
        # Config.__setattr__ writes into the config's dict: bypass it
        for key, value in cfg.__dict__.items():
            object.__setattr__(cached, key, value)
        return cached

    @property
    def pretty_text(self) -> str:
        content = repr(self._cfg_dict.to_dict())
        cache = self.__dict__.get('_pretty_text_cache')
        if cache is None or cache[0] != content:
            cache = (content, super().pretty_text)
            object.__setattr__(self, '_pretty_text_cache', cache)
        return cache[1]
