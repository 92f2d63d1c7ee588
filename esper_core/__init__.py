"""Esper core: the small, stable contracts, lifecycle, RL plumbing and run loop.

The core names no concrete host, blueprint, blend style, reward, policy or task:
every concrete piece arrives through the ``esper`` entry-point group.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version

#: The name Esper is installed under (``pip install esper-grow``). Not ``esper``: that name on PyPI is an
#: unrelated project, so a dependency line or hint saying ``esper`` would install the wrong thing.
DISTRIBUTION = "esper-grow"

try:
    __version__ = _dist_version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: Version of the plugin API. A plugin module may set ``ESPER_PLUGIN_API = <int>``;
#: a plugin that targets another major version is reported as broken, not loaded.
PLUGIN_API_VERSION = 1

__all__ = ["DISTRIBUTION", "PLUGIN_API_VERSION", "__version__"]
