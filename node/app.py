"""The application factory: opens the store and registers every interface's routes.

The only module that knows all interfaces (client API, web app, federation) and the
background workers; none of them imports it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_remotes import XForwardedStrict

from protocol import Identity

from .config import Config
from .federation.gossip import Gossip
from .federation.invites import Peering
from .federation.server import MAX_PULL_BODY, federation_app
from .http import admin, events, exchange, limits, listings, moderation, vocabulary
from .http import node as node_routes
from .http.middleware import authenticate, request_context
from .runtime import NODE, Metrics, Node
from .services import settings
from .services.ledger import open_ledger
from .store.files import private_database, private_dir
from .store.lock import RunLock
from .store.writer import Store
from .web import site
from .workers.retention import Retention
from .workers.webhooks import Webhooks


def create_app(config: Config, identity: Identity, *, lock: RunLock | None = None
               ) -> web.Application:
    """Build the node's app; the store opens on startup and closes on cleanup.

    The data dir's run lock is taken on startup unless the caller already holds it
    (``lock``, as `aidmesh run` does before it touches the data dir)."""
    # The client API enforces config.max_body_bytes itself; federation pulls may be 1 MiB.
    app = web.Application(client_max_size=max(config.max_body_bytes, MAX_PULL_BODY),
                          middlewares=[request_context, site.security_headers,
                                       limits.per_address, authenticate,
                                       limits.per_token])
    if config.trusted_proxies:
        app.middlewares.insert(0, XForwardedStrict([config.trusted_proxies]).middleware)
    limits.install(app, config.api_rate_per_s, config.api_burst,
                   config.api_rate_per_address_s, config.api_burst_per_address)

    async def open_node(app: web.Application) -> Any:
        private_dir(config.home)
        held = lock or RunLock(config.home)
        if lock is None:
            held.acquire()  # before the store opens: a second node on this dir stops here
        private_database(config.db_path)
        store = Store(open_ledger(config.db_path, identity, config.max_matches_per_listing))
        await store.start()
        settings.apply(config, await store.read(settings.stored))  # saved on /admin/settings
        node = Node(config=config, identity=identity, store=store, metrics=Metrics())
        store.on_foreign.append(node.tokens.clear)  # a token revoked by the CLI
        node.gossip = Gossip(node)
        node.peering = Peering(node)
        app[NODE] = node
        retention = Retention(node)
        await node.gossip.start()
        node.webhooks = Webhooks(node)
        await node.webhooks.start()
        await retention.start()
        yield
        await node.webhooks.stop()
        await retention.stop()
        await node.gossip.stop()
        await store.close()
        held.release()

    app.cleanup_ctx.append(open_node)
    for routes in (node_routes, listings, exchange, admin, moderation, events, vocabulary):
        routes.add_routes(app)
    site.add_routes(app)
    app.add_subapp("/federation/v1", federation_app())
    site.add_fallback(app)
    return app
