"""t2v-client's version (a module of its own: the package reads it for its User-Agent, the build for its metadata)."""

__version__ = "0.1.0"
