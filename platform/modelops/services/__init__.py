"""Lifecycle services: data, features, train, (next) gate, promote, deploy, monitor."""
