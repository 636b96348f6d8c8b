"""gridbot: a WeCom bot for grid groups (网格群) in civilized-city campaigns."""

__version__ = "0.1.0"
