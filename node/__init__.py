"""aidmesh node: the service around the protocol core, in layers.

    protocol/ <- store/ <- state/ <- services/ <- runtime.py <- http/, web/, federation/,
    workers/ <- app.py, commands.py, cli.py, home.py

Each layer imports only the layers to its left (config.py is a leaf anyone may import);
tests/test_layers.py enforces it. docs/architecture.md walks one entry through them.
"""

__version__ = "0.1.0"
