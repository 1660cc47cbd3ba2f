"""Every project's tests get the modelops.testing fixtures (also an installed pytest11 plugin)."""

pytest_plugins = ["modelops.testing.plugin"]
