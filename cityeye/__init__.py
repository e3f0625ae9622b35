"""CityEye: the `cityeye` command wires the edge agent, the hub, calibration and model tooling."""

from protocol import __version__

__all__ = ["__version__"]
