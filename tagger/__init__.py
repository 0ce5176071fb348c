"""tagger: taxonomy-conformant product tags from an open LLM."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tagger")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0.0.0+local"
