"""One module per CLI verb; see aira/cli.py."""
