"""One HTTP client for the tests' requests to the servers they start.

``httpx.get()`` and its siblings build a new ``httpx.Client`` for each call, and with it an SSL context (certifi's
bundle read and parsed again): about 24 ms of CPU per request on a loaded 2-core machine, against under 2 ms for a
request through a client built once. A test that polls a server every 0.05-0.1 s spent a fifth of a core or more on
that while the server it waited for had the work to do. This client is built once per process.

It keeps no connection open between requests: tests kill servers and start new ones on the same port, and a pooled
connection to a killed server would fail the next request sent over it.
"""

from __future__ import annotations

import httpx

HTTP = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
