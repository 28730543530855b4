"""glassmate's on-device runtime: everything that runs on the glasses."""

__version__ = "0.1.0"
