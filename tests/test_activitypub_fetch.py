"""The SSRF-safe client and remote keys (feedsvc/activitypub/fetch.py), against a loopback server."""
from __future__ import annotations

import gzip
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feedsvc.activitypub.durable import Durable, durable_path
from feedsvc.activitypub.fetch import ActorKeys, Client, FetchError, Refused, allowed, post
from feedsvc.activitypub.keys import SiteKey, new_site_key
from feedsvc.activitypub.signatures import RemoteKey, SignatureError, Signer, sign, verify
from feedsvc.config import from_env

OURS = "https://feeds.example.org/ap/actors/all#main-key"


class Remote:
    """A loopback server: routes by path to a function returning (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]] = {}
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                remote.seen.append((self.command, self.path, dict(self.headers.items()), body))
                route = remote.routes.get(self.path.split("?")[0])
                status, headers, data = route(self) if route else (404, {}, b"no")
                if status == 0:  # the route wrote its own answer
                    return
                self.send_response(status)
                for name, value in {"Content-Length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def remote() -> Iterator[Remote]:
    server = Remote()
    yield server
    server.close()


@pytest.fixture(scope="module")
def site() -> SiteKey:
    return new_site_key()


def loopback() -> Client:
    return Client(allow=from_env({"FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": "loopback"})[
        "FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE"])


def json_route(document: object) -> Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]:
    return lambda _: (200, {"Content-Type": "application/activity+json"}, json.dumps(document).encode())


def test_loopback_is_refused_unless_allowed(remote: Remote) -> None:
    remote.routes["/actor"] = json_route({"id": "x"})
    for url in (remote.url + "/actor", remote.url.replace("127.0.0.1", "localhost") + "/actor"):
        with pytest.raises(Refused, match="not a public address"):
            Client().get_json(url, None)
    assert remote.seen == []  # refused before connecting
    assert loopback().get_json(remote.url + "/actor", None) == {"id": "x"}
    assert Client().allow == () and from_env({})["FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE"] == ()


@pytest.mark.parametrize("address, expected", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("::1", False),
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False), ("ff02::1", False),
    ("fe80::1", False), ("fd00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True),
    ("64:ff9b::7f00:1", False), ("2002:7f00:1::", False),  # NAT64 and 6to4 forms of 127.0.0.1
])
def test_which_addresses_are_public(address: str, expected: bool) -> None:
    assert allowed(ipaddress.ip_address(address), ()) is expected


def test_a_cidr_setting_allows_those_networks_only() -> None:
    allow = from_env({"FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": "10.0.0.0/8, fd00::/8"})[
        "FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE"]
    assert allowed(ipaddress.ip_address("10.9.9.9"), allow)
    assert allowed(ipaddress.ip_address("fd00::5"), allow)
    assert not allowed(ipaddress.ip_address("127.0.0.1"), allow)


def test_a_redirect_to_a_private_address_is_refused(remote: Remote) -> None:
    remote.routes["/hop"] = lambda _: (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    remote.routes["/ok"] = lambda _: (302, {"Location": "/actor"}, b"")
    remote.routes["/actor"] = json_route({"id": "actor"})
    with pytest.raises(Refused, match="169.254.169.254"):
        loopback().get_json(remote.url + "/hop", None)
    assert loopback().get_json(remote.url + "/ok", None) == {"id": "actor"}  # a relative one, followed


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.org/", "http://user:pw@example.org/",
                                 "https:///no-host"])
def test_only_plain_http_urls_are_fetched(url: str) -> None:
    with pytest.raises(FetchError, match="not an http"):
        loopback().get_json(url, None)


def test_a_redirect_to_another_scheme_is_refused(remote: Remote) -> None:
    remote.routes["/hop"] = lambda _: (302, {"Location": "file:///etc/passwd"}, b"")
    with pytest.raises(FetchError, match="not an http"):
        loopback().get_json(remote.url + "/hop", None)


def test_redirects_stop_after_three(remote: Remote) -> None:
    remote.routes["/loop"] = lambda _: (302, {"Location": "/loop"}, b"")
    with pytest.raises(FetchError, match="more than 3 redirects"):
        loopback().get_json(remote.url + "/loop", None)
    assert len(remote.seen) == 4


def test_an_oversized_body_is_refused(remote: Remote) -> None:
    big = json.dumps({"id": "x", "pad": "x" * 2**20}).encode()
    remote.routes["/big"] = lambda _: (200, {}, big)
    with pytest.raises(FetchError, match="more than 1048576"):
        loopback().get_json(remote.url + "/big", None)

    def chunked(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:  # no length
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(40):
            handler.wfile.write(b"x" * 65536)
        return 0, {}, b""
    remote.routes["/stream"] = chunked
    with pytest.raises(FetchError, match="larger than 1048576"):
        loopback().get_json(remote.url + "/stream", None)
    bomb = gzip.compress(b" " * 8 * 2**20)  # 8 KiB that decode to 8 MiB
    remote.routes["/bomb"] = lambda _: (200, {"Content-Encoding": "gzip"}, bomb)
    with pytest.raises(FetchError, match="larger than 1048576"):
        loopback().get_json(remote.url + "/bomb", None)


def test_a_slow_answer_ends_at_the_deadline(remote: Remote) -> None:
    stop = threading.Event()

    def drip(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        while not stop.wait(0.1):
            handler.wfile.write(b" ")
            handler.wfile.flush()
        return 0, {}, b""
    remote.routes["/slow"] = drip
    started = time.monotonic()
    client = Client(allow=loopback().allow, timeout=1.0)
    try:
        with pytest.raises(FetchError, match="within 1 s|timed out"):
            client.get_json(remote.url + "/slow", None)
    finally:
        stop.set()
    assert time.monotonic() - started < 3


def test_gets_are_signed_and_posts_carry_their_body(remote: Remote, site: SiteKey) -> None:
    remote.routes["/actor"] = json_route({"id": "actor"})
    remote.routes["/inbox"] = lambda _: (202, {}, b"")
    signer = Signer(OURS, site.private_pem)
    client = loopback()
    client.get_json(remote.url + "/actor?x=1", signer)
    reply = client.post(remote.url + "/inbox", b'{"type":"Create"}', signer)
    assert reply.status == 202
    ours = lambda key_id: RemoteKey(key_id, OURS.split("#")[0], site.public_pem)  # noqa: E731
    (get_method, get_path, get_headers, _), (post_method, post_path, post_headers, body) = remote.seen
    assert verify(get_method, get_path, get_headers, b"", ours).key_id == OURS
    assert verify(post_method, post_path, post_headers, body, ours).key_id == OURS
    assert body == b'{"type":"Create"}'


def test_a_post_does_not_follow_a_redirect(remote: Remote, site: SiteKey) -> None:
    remote.routes["/inbox"] = lambda _: (308, {"Location": "/elsewhere"}, b"")
    assert post(remote.url + "/inbox", b"{}", Signer(OURS, site.private_pem), loopback().allow) == 308
    assert [path for _, path, _, _ in remote.seen] == ["/inbox"]
    with pytest.raises(Refused):  # the deliverer's call: any status is a return, no answer an error
        post(remote.url + "/inbox", b"{}", Signer(OURS, site.private_pem))


def test_actor_keys_are_fetched_once_and_kept(remote: Remote, site: SiteKey, tmp_path: Path) -> None:
    theirs = new_site_key()
    actor = remote.url + "/users/bob"
    remote.routes["/users/bob"] = json_route({
        "id": actor, "type": "Person", "inbox": actor + "/inbox",
        "publicKey": {"id": actor + "#main-key", "owner": actor, "publicKeyPem": theirs.public_pem}})
    durable = Durable(durable_path(tmp_path))
    keys = ActorKeys(durable, loopback(), Signer(OURS, site.private_pem))
    headers = sign("POST", "https://feeds.example.org/ap/inbox", b"{}", actor + "#main-key",
                   theirs.private_pem)
    assert verify("POST", "/ap/inbox", headers, b"{}", keys).owner == actor
    assert verify("POST", "/ap/inbox", headers, b"{}", keys).owner == actor
    assert len(remote.seen) == 1  # the second from the durable file's cache
    assert remote.seen[0][2].get("Signature")  # the key was fetched with a signed GET
    assert ActorKeys(durable, Client(), Signer(OURS, site.private_pem))(actor + "#main-key").owner == actor
    durable.forget_actor(actor)
    with pytest.raises(SignatureError, match="could not be fetched: .*not a public address"):
        ActorKeys(durable, Client(), Signer(OURS, site.private_pem))(actor + "#main-key")


def test_a_key_whose_owner_does_not_list_it_is_refused(remote: Remote, site: SiteKey, tmp_path: Path) -> None:
    theirs = new_site_key()
    mallory, victim = remote.url + "/users/mallory", remote.url + "/users/victim"
    remote.routes["/users/mallory"] = json_route({  # claims its key belongs to victim
        "id": mallory, "publicKey": {"id": mallory + "#main-key", "owner": victim,
                                     "publicKeyPem": theirs.public_pem}})
    remote.routes["/users/victim"] = json_route({"id": victim, "publicKey": {
        "id": victim + "#main-key", "owner": victim, "publicKeyPem": new_site_key().public_pem}})
    keys = ActorKeys(Durable(durable_path(tmp_path)), loopback(), Signer(OURS, site.private_pem))
    with pytest.raises(SignatureError, match="does not hold key"):
        keys(mallory + "#main-key")


def test_a_rotated_key_is_fetched_again_once_then_not_for_a_while(
        remote: Remote, site: SiteKey, tmp_path: Path) -> None:
    old, new = new_site_key(), new_site_key()
    actor = remote.url + "/users/carol"
    current = {"pem": old.public_pem}
    remote.routes["/users/carol"] = lambda _: json_route({"id": actor, "publicKey": {
        "id": actor + "#main-key", "owner": actor, "publicKeyPem": current["pem"]}})(_)
    durable = Durable(durable_path(tmp_path))
    signer = Signer(OURS, site.private_pem)
    first = ActorKeys(durable, loopback(), signer, again_after=600)  # a worker
    assert first(actor + "#main-key").public_pem == old.public_pem  # fetched and kept
    durable.store_actor_key(actor + "#main-key", actor, old.public_pem, now=time.time() - 3600)  # an hour ago
    current["pem"] = new.public_pem  # the actor rotates its key
    keys = ActorKeys(durable, loopback(), signer, again_after=600)  # another worker
    headers = sign("POST", "https://feeds.example.org/ap/inbox", b"{}", actor + "#main-key", new.private_pem)
    with pytest.raises(SignatureError, match="does not match"):
        verify("POST", "/ap/inbox", headers, b"{}", keys)  # the kept key alone fails
    assert verify("POST", "/ap/inbox", headers, b"{}", keys, refresh=keys.fetch).owner == actor
    fetches = len(remote.seen)
    # the first worker remembers the old key for a minute, then reads the new one from the file
    later = time.monotonic() + ActorKeys.MEMO_SECONDS + 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "monotonic", lambda: later)
        assert verify("POST", "/ap/inbox", headers, b"{}", first, refresh=first.fetch).owner == actor
    bad = sign("POST", "https://feeds.example.org/ap/inbox", b"{}", actor + "#main-key", old.private_pem)
    for _ in range(5):  # badly signed posts: no fetch each (the key was fetched just now)
        with pytest.raises(SignatureError, match="does not match"):
            verify("POST", "/ap/inbox", bad, b"{}", keys, refresh=keys.fetch)
    assert len(remote.seen) == fetches == 2


def test_a_kept_key_is_read_from_the_file_once_a_minute(
        remote: Remote, site: SiteKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs, actor = new_site_key(), remote.url + "/users/erin"
    durable = Durable(durable_path(tmp_path))
    durable.store_actor_key(actor + "#main-key", actor, theirs.public_pem)
    reads: list[str] = []
    real = durable.actor_key

    def counted(key_id: str) -> tuple[str, str, float] | None:
        reads.append(key_id)
        return real(key_id)
    monkeypatch.setattr(durable, "actor_key", counted)
    keys = ActorKeys(durable, loopback(), Signer(OURS, site.private_pem))
    headers = sign("POST", "https://feeds.example.org/ap/inbox", b"{}", actor + "#main-key",
                   theirs.private_pem)
    for _ in range(20):
        assert verify("POST", "/ap/inbox", headers, b"{}", keys, refresh=keys.fetch).owner == actor
    assert len(reads) == 1 and remote.seen == []
    durable.forget_actor(actor)  # its Delete, received by another worker
    later = time.monotonic() + ActorKeys.MEMO_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)  # a minute on
    for _ in range(5):  # forgotten here too: asked again, once, and the failure remembered
        with pytest.raises(SignatureError, match="could not be fetched"):
            keys(actor + "#main-key")
    assert len(reads) == 3 and len(remote.seen) == 1


def test_a_key_that_cannot_be_had_is_not_asked_again_for_a_minute(
        remote: Remote, site: SiteKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = ActorKeys(Durable(durable_path(tmp_path)), loopback(), Signer(OURS, site.private_pem))
    for _ in range(5):  # a flood naming a key id on a server that answers 404
        with pytest.raises(SignatureError, match="could not be fetched: .*HTTP 404"):
            keys(remote.url + "/users/nobody#main-key")
    assert len(remote.seen) == 1
    later = time.monotonic() + ActorKeys.MEMO_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    with pytest.raises(SignatureError, match="could not be fetched"):
        keys(remote.url + "/users/nobody#main-key")
    assert len(remote.seen) == 2


def _certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate it signs for the name localhost only."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    now = datetime.now(UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(2).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return paths


def test_https_keeps_the_name_for_sni_and_the_certificate(
        remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    ca, leaf, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, key)
    names: list[str] = []

    def seen(_socket: ssl.SSLObject, name: str, _context: ssl.SSLContext) -> None:
        names.append(name)
    context.sni_callback = seen
    remote.server.socket = context.wrap_socket(remote.server.socket, server_side=True)
    remote.routes["/actor"] = json_route({"id": "tls"})
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the client trusts the test CA (and the system's)
    port = remote.server.server_port
    assert loopback().get_json(f"https://localhost:{port}/actor", None) == {"id": "tls"}
    assert names == ["localhost"]  # connected to the checked 127.0.0.1, but named localhost
    with pytest.raises(FetchError, match="certificate|hostname|match"):
        loopback().get_json(f"https://127.0.0.1:{port}/actor", None)  # the certificate is localhost's


def test_the_next_checked_address_is_tried_when_one_cannot_be_reached(
        remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    remote.routes["/actor"] = json_route({"id": "second"})
    port = remote.server.server_port
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
               for ip in ("10.0.0.1", "127.0.0.2", "127.0.0.1")]  # not allowed, nobody there, the server
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    assert loopback().get_json(f"http://remote.example:{port}/actor", None) == {"id": "second"}
    assert remote.seen[0][2]["Host"] == f"remote.example:{port}"  # the name, not the address


def test_at_most_four_requests_at_once_to_one_server(remote: Remote, site: SiteKey) -> None:
    lock, now, most = threading.Lock(), [0], [0]
    release = threading.Event()

    def slow(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        release.wait(5)
        with lock:
            now[0] -= 1
        return 202, {}, b""
    remote.routes["/inbox"] = slow
    client, signer = loopback(), Signer(OURS, site.private_pem)
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(client.post(remote.url + "/inbox", b"{}",
                                                                           signer).status))
               for _ in range(8)]  # the deliverer's threads, all to one shared inbox
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while most[0] < 4 and time.monotonic() < deadline:  # wait until 4 are in, on a condition
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert statuses == [202] * 8 and most[0] == 4


# An Ed25519 key as Fedify 2.3.6 publishes it in `assertionMethod` (exportMultibaseKey), and the same
# key as its exportSpki writes it: recorded once with the follower app's Node.
FEDIFY_MULTIKEY = "z6Mkko7joRbiLpjZpBmGFvuj92actDwsgM9UEHy8TZFq5M29"
FEDIFY_MULTIKEY_PEM = ("-----BEGIN PUBLIC KEY-----\n"
                       "MCowBQYDK2VwAyEAXjxYZVRXCkn+eTZ8+32kr0jj2NIBe2WDxYPEcBoM+XI=\n"
                       "-----END PUBLIC KEY-----\n")


def test_a_multikey_in_assertion_method_is_found(remote: Remote, site: SiteKey, tmp_path: Path) -> None:
    actor = remote.url + "/users/dave"
    remote.routes["/users/dave"] = json_route({
        "id": actor, "type": "Person",
        "publicKey": {"id": actor + "#main-key", "owner": actor, "publicKeyPem": new_site_key().public_pem},
        "assertionMethod": [{"id": actor + "#key-2", "type": "Multikey", "controller": actor,
                             "publicKeyMultibase": FEDIFY_MULTIKEY},
                            {"id": actor + "#key-3", "type": "Multikey", "controller": actor,
                             "publicKeyMultibase": "zNotBase58!"}]})
    keys = ActorKeys(Durable(durable_path(tmp_path)), loopback(), Signer(OURS, site.private_pem))
    found = keys(actor + "#key-2")
    assert (found.owner, found.public_pem) == (actor, FEDIFY_MULTIKEY_PEM)
    with pytest.raises(SignatureError, match="does not hold key"):
        keys(actor + "#key-3")
