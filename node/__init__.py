"""aidmesh node: store, client API, federation and CLI around the protocol core."""

__version__ = "0.1.0"
