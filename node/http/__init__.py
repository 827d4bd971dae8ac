"""The client REST API under /api/v1: middleware, problem+json, one route module per
resource, and the OpenAPI document. Handlers parse the request, call a service, render
the result; no SQL and no business rule here.

Imports `node.runtime`, `node.services` and, for types, the layers below them.
"""
