"""The coordinator web app (server-rendered pages). Empty until the web app issue.

Will import `node.runtime` and `node.services`, like the client API.
"""
