"""Dependency-free building blocks shared by every layer: errors, hashing, time windows."""
