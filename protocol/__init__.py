"""The wire contract shared by the edge agent and the hub."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cityeye")  # one distribution: agent, hub and protocol share its version
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
