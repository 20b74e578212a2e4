"""The installed package's version (one place; the package root re-exports it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cranerec")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
