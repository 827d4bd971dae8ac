"""Node to node: the signed federation endpoints (server.py), the gossip client that runs
a round with each peer (gossip.py, link.py, verify.py), and RFC 9421 signatures.

Imports `node.runtime`, `node.services` (replication), `node.http.problems` for its error
bodies, and the layers below; never the client API's routes.
"""
