"""Background tasks of a running node: webhook deliveries and the retention sweep.

Imports `node.services` and the layers below.
"""
