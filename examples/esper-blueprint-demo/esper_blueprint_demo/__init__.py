"""A third-party Esper plugin that contributes one seed blueprint, ``conv_dilated``."""

__version__ = "0.1.0"
