"""A client for other servers that cannot be turned against ours (SSRF), and remote actors' keys.

Each request resolves the host (getaddrinfo), keeps only addresses that are public (not
loopback, private, link-local, multicast, reserved; FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE adds
networks) and connects to the checked address itself, so a second DNS answer cannot swap it;
Host and TLS SNI (and the certificate check) keep the name. Redirects are followed by GETs only,
at most 3, each re-checked; the whole request has a 10 s deadline and the body a 1 MiB cap.
urllib3 does HTTP (its pools are keyed by the checked address); under gevent it cooperates.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import math
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .signatures import RemoteKey, SignatureError, Signer, sign

TIMEOUT = 10.0
MAX_BODY = 2**20
MAX_REDIRECTS = 3
POOLS = 64  # connection pools kept (one per checked address and name), least recently used out
CONNECTIONS = 4  # at most this many at once to one server (others wait their turn): polite, and
# at most POOLS * CONNECTIONS sockets kept open
NAT64 = ipaddress.ip_network("64:ff9b::/96")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A request that could not be made or answered usefully; the message says why."""


class Refused(FetchError):
    """The URL's host is, or resolves only to, an address we never connect to."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def allowed(address: Address, allow: tuple[Network, ...]) -> bool:
    """Tell whether `address` may be connected to: public, or in `allow`."""
    if any(address in network for network in allow):
        return True
    if address.is_multicast or not address.is_global:
        return False
    embedded = _embedded_ipv4(address)  # an IPv6 form of an IPv4 address: that one decides
    return embedded is None or allowed(embedded, allow)


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)


class Client:
    """Requests to other servers, refused to addresses not allowed."""

    def __init__(self, allow: tuple[Network, ...] = (), timeout: float = TIMEOUT,
                 max_body: int = MAX_BODY) -> None:
        self.allow, self.timeout, self.max_body = allow, timeout, max_body
        self._pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def get_json(self, url: str, signer: Signer | None) -> dict[str, Any]:
        """GET an ActivityStreams document (signed when `signer` is given: servers in
        authorized-fetch mode refuse unsigned GETs); FetchError unless 200 and a JSON object."""
        reply = self._request("GET", url, None, signer)
        if reply.status != 200:
            raise FetchError(f"GET {url}: HTTP {reply.status}")
        try:
            document = json.loads(reply.body)
        except ValueError:
            raise FetchError(f"GET {url}: not JSON") from None
        if not isinstance(document, dict):
            raise FetchError(f"GET {url}: not a JSON object")
        return document

    def post(self, url: str, body: bytes, signer: Signer) -> Reply:
        """POST signed `body` (an activity) to an inbox; redirects are not followed."""
        return self._request("POST", url, body, signer)

    def _request(self, method: str, url: str, body: bytes | None, signer: Signer | None) -> Reply:
        deadline = time.monotonic() + self.timeout
        for _ in range(MAX_REDIRECTS + 1):
            reply = self._once(method, url, body, signer, deadline)
            location = reply.headers.get("location")
            if method != "GET" or reply.status not in (301, 302, 303, 307, 308) or not location:
                return reply
            url = urljoin(url, location)
        raise FetchError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    def _once(self, method: str, url: str, body: bytes | None, signer: Signer | None,
              deadline: float) -> Reply:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise FetchError(f"{url}: not an http(s) URL without credentials")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = sign(method, url, body, signer.key_id, signer.private_pem) if signer else \
            {"Host": parts.netloc, "Accept": "application/activity+json"}
        headers["User-Agent"] = "feedsvc (ActivityPub)"
        for address in self._resolve(parts.hostname, port):  # the next if one cannot be reached
            pool = self._pool(parts.scheme, parts.hostname, port, address)
            try:
                response = pool.urlopen(method, target, body=body, headers=headers, redirect=False,
                                        retries=False, preload_content=False, assert_same_host=False,
                                        timeout=urllib3.Timeout(total=self._left(deadline, url)),
                                        pool_timeout=math.ceil(self._left(deadline, url)))
                break
            except urllib3.exceptions.NewConnectionError as error:
                failed = error
            except urllib3.exceptions.HTTPError as error:
                raise FetchError(f"{method} {url}: {error}") from None
        else:
            raise FetchError(f"{method} {url}: {failed}") from None
        try:
            data = self._read(response, deadline, url)
        finally:
            response.release_conn()
        return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, data)

    def _left(self, deadline: float, url: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"{url}: no answer within {self.timeout:g} s")
        return left

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float, url: str) -> bytes:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise FetchError(f"{url}: body of {length} bytes, more than {self.max_body}")
        chunks, size = [], 0
        try:
            # read1: what one read of the socket gives, so that a dripping server meets the
            # deadline; decoded, so that a small gzip body cannot unpack past the cap
            while chunk := response.read1(65536, decode_content=True):
                size += len(chunk)
                if size > self.max_body:
                    raise FetchError(f"{url}: body larger than {self.max_body} bytes")
                chunks.append(chunk)
                self._left(deadline, url)
        except urllib3.exceptions.HTTPError as error:
            raise FetchError(f"{url}: {error}") from None
        return b"".join(chunks)

    def _resolve(self, host: str, port: int) -> list[str]:
        """Return the addresses of `host` that may be connected to, in the resolver's order;
        Refused if none."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise FetchError(f"{host}: cannot be resolved ({error})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        usable = list(dict.fromkeys(str(a) for a in addresses if allowed(a, self.allow)))
        if not usable:
            raise Refused(f"{host} resolves to {', '.join(map(str, addresses)) or 'nothing'}: not a "
                          "public address (FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE allows others)")
        return usable

    def _pool(self, scheme: str, host: str, port: int, address: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, host, port, address)
        with self._lock:
            pool = self._pools.pop(key, None)
            if pool is None:
                if scheme == "https":  # connect to the address; SNI and the certificate: the name
                    pool = urllib3.HTTPSConnectionPool(address, port, server_hostname=host,
                                                       assert_hostname=host, maxsize=CONNECTIONS,
                                                       block=True)
                else:
                    pool = urllib3.HTTPConnectionPool(address, port, maxsize=CONNECTIONS, block=True)
            self._pools[key] = pool
            while len(self._pools) > POOLS:
                self._pools.popitem(last=False)[1].close()
            return pool


@functools.lru_cache(maxsize=8)
def client(allow: tuple[Network, ...] = ()) -> Client:
    """The process's client for these allowed networks (its connection pools are kept)."""
    return Client(allow)


def post(url: str, body: bytes, signer: Signer, allow: tuple[Network, ...] = ()) -> int:
    """POST a signed activity; return the HTTP status (any), or raise FetchError if none came."""
    return client(allow).post(url, body, signer).status


class ActorKeys:
    """Remote actors' public keys by key id: kept in the durable file (`ttl` seconds), else
    fetched (a signed GET) from the key id's document, an actor or a key.

    Each process also remembers, for a minute, the last `MEMO` keys it read or fetched, and the
    key ids it could not fetch: a flood of posts, well or badly signed, or naming a key that
    cannot be had, costs no SQLite read and no fetch each. Within that minute it also sees a
    key that another process fetched anew (rotated) or forgot (its actor was deleted)."""

    MEMO = 1024
    MEMO_SECONDS = 60.0

    def __init__(self, durable: Any, client: Client, signer: Signer, ttl: float = 86400.0,
                 again_after: float = 600.0) -> None:
        self.durable, self.client, self.signer, self.ttl = durable, client, signer, ttl
        self.again_after = again_after
        # key id -> (the key, or why it could not be had; when fetched (epoch); when read (monotonic))
        self._memo: OrderedDict[str, tuple[RemoteKey | str, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, key_id: str) -> RemoteKey:
        known = self._known(key_id)
        if known is not None and time.time() - known[1] < self.ttl:
            return known[0]
        return self.fetch(key_id)

    def fetch(self, key_id: str) -> RemoteKey:
        """Fetch the key anew (verify's `refresh`: a kept key that no longer verifies may have
        been rotated), unless it was fetched less than `again_after` seconds ago (by any
        process, as this one saw in the last minute): badly signed posts cost no fetch each."""
        known = self._known(key_id)
        if known is not None and time.time() - known[1] < self.again_after:
            return known[0]
        try:
            document = self.client.get_json(key_id.split("#")[0], self.signer)
            key = _key_in(document, key_id)
            if key.owner != document.get("id"):  # a key's own document: its owner must list it
                key = _key_in(self.client.get_json(key.owner, self.signer), key_id)
        except (FetchError, SignatureError) as error:
            reason = f"key {key_id} could not be fetched: {error}"
            self._remember(key_id, reason, time.time())
            raise SignatureError(reason) from None
        self.durable.store_actor_key(key.key_id, key.owner, key.public_pem)
        self._remember(key_id, key, time.time())
        return key

    def _known(self, key_id: str) -> tuple[RemoteKey, float] | None:
        """The key as remembered (read less than a minute ago), else as the file has it; a key
        id that could not be fetched in the last minute raises its reason again."""
        with self._lock:
            found = self._memo.get(key_id)
            if found is not None and time.monotonic() - found[2] < self.MEMO_SECONDS:
                self._memo.move_to_end(key_id)
                if isinstance(found[0], str):
                    raise SignatureError(found[0])
                return found[0], found[1]
        kept = self.durable.actor_key(key_id)
        if kept is None:
            with self._lock:
                self._memo.pop(key_id, None)
            return None
        key = RemoteKey(key_id, kept[0], kept[1])
        self._remember(key_id, key, kept[2])
        return key, kept[2]

    def _remember(self, key_id: str, found: RemoteKey | str, fetched: float) -> None:
        with self._lock:
            self._memo[key_id] = (found, fetched, time.monotonic())
            self._memo.move_to_end(key_id)
            while len(self._memo) > self.MEMO:
                self._memo.popitem(last=False)


def _key_in(document: dict[str, Any], key_id: str) -> RemoteKey:
    """Find `key_id` in an actor's `publicKey` (a PEM) or `assertionMethod` (a Multikey, as
    Fedify publishes Ed25519 keys), one or a list, or as the document itself."""
    entries: list[Any] = [document]
    for name in ("publicKey", "assertionMethod"):
        listed = document.get(name)
        entries += listed if isinstance(listed, list) else [listed]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("id") == key_id:
            owner = entry.get("owner") or entry.get("controller") or document.get("id")
            pem = entry.get("publicKeyPem") or _multikey_pem(entry.get("publicKeyMultibase"))
            if isinstance(owner, str) and isinstance(pem, str):
                return RemoteKey(key_id, owner, pem)
    raise SignatureError(f"{document.get('id')!r} does not hold key {key_id}")


BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ED25519_PUB = b"\xed\x01"  # the multicodec prefix of an Ed25519 public key


def _multikey_pem(value: object) -> str | None:
    """Turn a Multikey's base58btc (`z...`) Ed25519 public key into PEM; None for any other."""
    if not isinstance(value, str) or not value.startswith("z") or len(value) > 100 \
            or any(char not in BASE58 for char in value[1:]):
        return None
    number = 0
    for char in value[1:]:
        number = number * 58 + BASE58.index(char)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if raw[:2] != ED25519_PUB or len(raw) != 34:
        return None
    key = ed25519.Ed25519PublicKey.from_public_bytes(raw[2:])
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
