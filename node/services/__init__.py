"""What the node does, one module per noun: listings, claims, matches, peers, tokens,
people (accounts, invites, sessions), areas, moderation, webhooks, replication, status;
overview composes what one web page shows. Plain functions over a ledger and a
connection, run inside the caller's transaction; typed errors (errors.py) say what went
wrong and what to do next.

Imports `protocol`, `node.store` and `node.state`; never aiohttp, argparse or HTML, so the
API, the web app and the CLI call the very same function for the same action.
"""
