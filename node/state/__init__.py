"""State folded from the logs: listings, trust edges, the exchange fold, matching,
listing queries and the event journal. Nothing here is truth: `projection.rebuild`
reproduces every row from the entries.

Imports `protocol` and `node.store` only.
"""
