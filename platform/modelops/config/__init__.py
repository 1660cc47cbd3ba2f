"""Typed, side-effect-free configuration: platform settings and project specs."""

from modelops.config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
