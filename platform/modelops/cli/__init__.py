"""The ``modelops`` command line: one module per noun, lifecycle verbs at the top level."""
