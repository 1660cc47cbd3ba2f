"""Flows across lifecycle steps: each calls the step services and holds no step logic."""
