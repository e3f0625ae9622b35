"""CityEye: the `cityeye` command wires the edge agent, the hub, calibration and model tooling."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cityeye")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
