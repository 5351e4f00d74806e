"""Where a webhook may point, and the one way a body is sent there.

A webhook makes Studio send requests to an address a user typed, from inside the pod: without
checks that is a way to reach ComfyUI, the cloud's metadata service or anything on the private
network (SSRF). So the host is resolved and every address it resolves to must be public, both when
the webhook is saved and again at each delivery (DNS can change between the two), and the request
then goes to the checked address itself, never to a second lookup. Only hosts an admin lists in
``webhook_allowed_hosts`` skip the address check. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

MAX_URL = 2048
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class TargetRefused(ValueError):
    """The URL may not be used as a webhook target; the message says why in words."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (lower case), for the Host header and TLS
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # resolved and checked, in the resolver's order


@dataclass(frozen=True)
class Sent:
    status_code: int | None
    error: str | None
    duration_ms: int


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def forbidden(address: Address) -> str | None:
    """Why an address may not be a webhook target, or None for an ordinary public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA:
        return "a cloud metadata address"
    checks = (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
              ("is_multicast", "a multicast address"), ("is_unspecified", "an unspecified address"),
              ("is_private", "a private address"), ("is_reserved", "a reserved address"))
    for attribute, words in checks:
        if getattr(address, attribute):
            return words
    if not address.is_global:
        return "a non-public address"
    return None


def parse_allowed(spec: str | None) -> tuple[str, ...]:
    """The admin's list: host names or IP addresses, comma-separated, compared in lower case."""
    return tuple(part.strip().lower().strip("[]") for part in (spec or "").split(",") if part.strip())


def check_target(url: str, allowed: tuple[str, ...], resolver: Resolver = resolve) -> Target:
    """Parses and resolves ``url``; raises ``TargetRefused`` saying why it cannot be a target."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise TargetRefused(f"The URL must be at most {MAX_URL} characters.")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise TargetRefused("The URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise TargetRefused("The URL cannot be read.") from err
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("Only http:// and https:// URLs can receive webhooks.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefused("The URL may not contain a user name or password: use the signing secret instead.")
    host = (parts.hostname or "").lower()
    if not host:
        raise TargetRefused("The URL names no host.")
    if parts.fragment:
        raise TargetRefused("The URL may not contain a #fragment.")
    try:
        addresses = [host] if _is_ip(host) else resolver(host, port)
    except (OSError, UnicodeError) as err:
        raise TargetRefused(f"The host {host} cannot be resolved.") from err
    if not addresses:
        raise TargetRefused(f"The host {host} cannot be resolved.")
    if host not in allowed:
        for text in addresses:
            why = forbidden(ipaddress.ip_address(text.split("%", 1)[0]))
            if why:
                raise TargetRefused(f"The host {host} resolves to {why} ({text}), which webhooks may not reach "
                                    "unless an admin allows the host in the webhook allowed hosts setting.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, tuple(addresses))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def send(target: Target, body: bytes, headers: dict[str, str], *, timeout_s: float) -> Sent:
    """POSTs once to the first checked address; any answer but a 2xx, or no answer, is a failure."""
    started = time.monotonic()
    address = target.addresses[0]
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    default_port = 443 if target.scheme == "https" else 80
    if target.port != default_port:
        host_header += f":{target.port}"
    timeout = urllib3.Timeout(connect=min(5.0, timeout_s), read=timeout_s, total=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1,
                                           server_hostname=target.host, assert_hostname=target.host)
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen("POST", target.path, body=body, headers={**headers, "Host": host_header},
                                redirect=False, retries=False, preload_content=False, assert_same_host=False)
        status = response.status
        response.close()  # the body is not read: a target trickling one cannot hold a worker
    except Urllib3Error as err:
        return Sent(None, _describe(err), _ms(started))
    except OSError as err:
        return Sent(None, f"connection failed: {err.strerror or type(err).__name__}", _ms(started))
    finally:
        pool.close()
    if 300 <= status < 400:
        return Sent(status, "redirects are not followed", _ms(started))
    if not 200 <= status < 300:
        return Sent(status, f"answered HTTP {status}", _ms(started))
    return Sent(status, None, _ms(started))


def _describe(err: Exception) -> str:
    """A short, secret-free sentence for the delivery log."""
    text = type(err).__name__
    if "Timeout" in text:
        return "timed out"
    if "NewConnectionError" in text or "ConnectTimeout" in text:
        return "could not connect"
    if "SSL" in text:
        return "TLS handshake or certificate check failed"
    if "Protocol" in text:
        return "the connection broke before an answer"
    return f"request failed ({text})"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
