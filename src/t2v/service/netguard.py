"""Where webhooks may go: http(s) URLs whose host resolves to public internet addresses only.

A ``callback_url`` is parsed the way the sender parses it, its host is resolved once
(``socket.getaddrinfo``, which also reads odd IPv4 spellings such as ``0x7f000001``,
``2130706433`` or ``127.1``), and *every* address it resolves to must be global unicast:
loopback, private, link-local (``169.254.169.254`` cloud metadata, ``fe80::/10``), shared
(``100.64/10``), multicast, reserved and unspecified addresses are refused, and so are IPv6
forms that carry an IPv4 address (``::ffff:127.0.0.1``, 6to4 ``2002::/16``, NAT64, Teredo)
when the carried address is refused. The sender then connects to the checked addresses
only (:class:`WebhookTarget`), so a second lookup cannot send it elsewhere.

``T2V_WEBHOOK_ALLOW`` (``Settings.webhook_allow``) lists exceptions: host names (matched
exactly, case-insensitively), IP addresses and CIDR networks.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote

import httpcore
import httpx

from t2v.errors import InvalidRequest

logger = logging.getLogger(__name__)

__all__ = ["AllowList", "PinnedBackend", "UnsafeCallback", "WebhookTarget", "check_callback_url", "is_public_address",
           "post_pinned", "resolve_target"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: One message for every refusal, so a client cannot tell an unknown internal name from a private one.
REFUSED = ("callback_url: must be an http:// or https:// URL whose host resolves only to public internet "
           "addresses (loopback, private, link-local, multicast and reserved addresses are refused unless the "
           "server's webhook allow-list names them), e.g. https://hooks.example.com/t2v")

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class UnsafeCallback(InvalidRequest):
    """The callback URL is malformed, does not resolve, or reaches a refused address."""

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSED, field="callback_url")
        #: What exactly was wrong, for the server's log only.
        self.reason = reason


@dataclass(frozen=True)
class AllowList:
    """Parsed ``webhook_allow``: host names, and networks (single addresses are /32 or /128)."""

    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, spec: str | None) -> AllowList:
        hosts, networks = set(), []
        for item in (spec or "").split(","):
            item = item.strip().strip("[]")
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(_norm_host(item))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return _norm_host(host) in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip, *_embedded_ipv4(ip)]
        return any(a in net for a in candidates for net in self.networks if a.version == net.version)


@dataclass(frozen=True)
class WebhookTarget:
    """A checked callback URL: where to connect (``addresses``) and what to say (``host_header``, ``target``)."""

    scheme: str
    host: str  # ASCII (IDNA) host, no brackets; the TLS server name
    port: int
    host_header: str  # host[:port] as in the URL, without user info
    target: str  # path and query
    userinfo: str  # "user:password" from the URL, or ""
    addresses: tuple[str, ...]  # every address the host resolved to, all checked

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.target}"


def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if ip.version != 6:
        return []
    out = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if any(ip in net for net in _NAT64):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address (None: it is)."""
    for name in ("is_unspecified", "is_loopback", "is_link_local", "is_multicast", "is_private", "is_reserved"):
        if getattr(ip, name):
            return name[3:].replace("_", "-")
    if ip.version == 6 and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "not global"
    for inner in _embedded_ipv4(ip):
        if (why := _refusal(inner)) is not None:
            return f"carries {inner} ({why})"
    return None


def is_public_address(address: str | IPAddress) -> bool:
    """True for a global unicast address that carries no refused IPv4 address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return False
    return _refusal(ip) is None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback: ``localhost``, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_target(url: str, allow: AllowList | str | None = None) -> WebhookTarget:
    """Parse ``url``, resolve its host once and check every address; raises :class:`UnsafeCallback`."""
    if not isinstance(allow, AllowList):
        allow = AllowList.parse(allow)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise UnsafeCallback(f"unparsable URL: {e}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeCallback(f"scheme {parsed.scheme!r}")
    try:
        host = parsed.raw_host.decode("ascii")
        netloc = parsed.netloc.decode("ascii")
    except UnicodeDecodeError:
        raise UnsafeCallback("non-ASCII host") from None
    if not host or "%" in host:
        raise UnsafeCallback(f"bad host {host!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise UnsafeCallback(f"{host!r} does not resolve: {e}") from None
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise UnsafeCallback(f"{host!r} has no IP address")
    if not allow.allows_host(host):
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            why = _refusal(ip)
            if why is not None and not allow.allows_address(ip):
                raise UnsafeCallback(f"{host!r} resolves to {address} ({why})")
    target = parsed.raw_path.decode("ascii") or "/"
    userinfo = parsed.userinfo.decode("ascii", "replace")
    return WebhookTarget(parsed.scheme, host, port, netloc, target, userinfo, addresses)


def check_callback_url(url: str | None, settings) -> None:
    """Refuse (HTTP 422 naming ``callback_url``) a URL the server must not call; None passes."""
    if url is None:
        return
    try:
        resolve_target(url, settings.webhook_allow)
    except UnsafeCallback as e:
        logger.info("refused callback_url %r: %s", url, e.reason)
        raise


# ---- sending to a checked target ----------------------------------------------------------------


def post_pinned(target: WebhookTarget, body: bytes, headers: dict[str, str], *, timeout_s: float,
                ssl_context: ssl.SSLContext | None = None) -> int:
    """POST ``body`` to ``target``, connecting only to its checked addresses, within ``timeout_s``
    seconds in all (connect, TLS, sending and the response head). Returns the HTTP status; raises
    ``httpcore.NetworkError``/``TimeoutException``/``ProtocolError`` or ``OSError``. The Host header,
    TLS server name and certificate check use the URL's host; no redirects, no proxies."""
    if target.scheme == "https" and ssl_context is None:
        ssl_context = httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE / SSL_CERT_DIR
    sent = [("Host", target.host_header), *headers.items()]
    if target.userinfo:
        user, _, password = target.userinfo.partition(":")
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
        sent.append(("Authorization", f"Basic {token}"))
    url = httpcore.URL(scheme=target.scheme.encode(), host=target.host.encode(), port=target.port,
                       target=target.target.encode())
    backend = PinnedBackend(target.addresses, time.monotonic() + timeout_s)
    timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    with httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend, retries=0) as pool:
        with pool.stream("POST", url, headers=sent, content=body, extensions={"timeout": timeouts}) as response:
            return response.status  # the body is never read


class PinnedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects only to ``addresses`` (whatever host the URL names),
    and ends every connect, read and write by one overall ``deadline`` (``time.monotonic()``)."""

    def __init__(self, addresses: tuple[str, ...], deadline: float) -> None:
        self.addresses = addresses
        self.deadline = deadline
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None) -> httpcore.NetworkStream:
        error: Exception = httpcore.ConnectError("no address")
        for address in self.addresses:
            try:
                stream = self.inner.connect_tcp(address, port, _left(self.deadline, timeout, httpcore.ConnectTimeout),
                                                local_address, socket_options)
                return DeadlineStream(stream, self.deadline)
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as e:
                error = e
        raise error

    def connect_unix_socket(self, path, timeout=None, socket_options=None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose reads, writes and TLS handshake stop at ``deadline``."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(self.deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(self.deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        tls = self.inner.start_tls(ssl_context, server_hostname, _left(self.deadline, timeout, httpcore.ConnectTimeout))
        return DeadlineStream(tls, self.deadline)

    def get_extra_info(self, info: str):
        return self.inner.get_extra_info(info)


def _left(deadline: float, timeout: float | None, exc: type[Exception]) -> float:
    """Seconds an operation may take: its own timeout, cut to what is left before ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("webhook delivery deadline passed")
    return left if timeout is None else min(timeout, left)
