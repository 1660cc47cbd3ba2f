"""modelops: ship models safely, from feature store to production and back."""

__version__ = "0.1.0"
