"""The coordinator web app: server-rendered pages at /, for people, not programs.

Owns routes (one module per page family), Jinja2 templates, static files and the
translation catalogs. Like the API it holds no SQL and no business rule: every form
becomes the same service call the API and the CLI make. Imports runtime and services.
"""
