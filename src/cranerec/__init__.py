"""cranerec: multimodal graph recommendation (CRANE and the baselines it is measured against)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cranerec")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
