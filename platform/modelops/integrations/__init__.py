"""One module per external system. Integrations never import each other or the CLI."""
