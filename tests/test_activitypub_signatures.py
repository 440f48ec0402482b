"""HTTP signatures (feedsvc/activitypub/signatures.py): cavage-12 and RFC 9421, with real keys."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from hypothesis import given
from hypothesis import strategies as st

from feedsvc.activitypub.keys import SiteKey, new_site_key
from feedsvc.activitypub.signatures import RemoteKey, SignatureError, sign, verify

ACTOR = "https://social.example/users/alice"
KEY_ID = ACTOR + "#main-key"
INBOX = "https://feeds.example.org/ap/inbox"
BODY = json.dumps({"type": "Follow", "actor": ACTOR, "object": "https://feeds.example.org/ap/actors/th"}).encode()


@pytest.fixture(scope="module")
def keys() -> tuple[SiteKey, SiteKey]:
    return new_site_key(), new_site_key()


def lookup(pair: SiteKey, key_id: str = KEY_ID) -> Any:
    def find(asked: str) -> RemoteKey:
        if asked != key_id:
            raise SignatureError(f"no key {asked}")
        return RemoteKey(key_id, ACTOR, pair.public_pem)
    return find


def signed_post(pair: SiteKey, body: bytes = BODY, url: str = INBOX,
                now: float | None = None) -> dict[str, str]:
    return sign("POST", url, body, KEY_ID, pair.private_pem, now=now)


def test_a_cavage_signature_passes_and_names_its_key(keys: tuple[SiteKey, SiteKey]) -> None:
    headers = signed_post(keys[0])
    assert set(headers) == {"Host", "Date", "Digest", "Content-Type", "Signature"}
    assert 'headers="(request-target) host date digest content-type"' in headers["Signature"]
    assert 'algorithm="rsa-sha256"' in headers["Signature"]
    found = verify("POST", "/ap/inbox", headers, BODY, lookup(keys[0]))
    assert (found.key_id, found.owner) == (KEY_ID, ACTOR)


def test_a_signed_get_passes(keys: tuple[SiteKey, SiteKey]) -> None:
    headers = sign("GET", "https://feeds.example.org/ap/actors/th?page=2", None, KEY_ID, keys[0].private_pem)
    assert "Digest" not in headers and "activity+json" in headers["Accept"]
    assert verify("GET", "/ap/actors/th?page=2", headers, b"", lookup(keys[0])).owner == ACTOR
    with pytest.raises(SignatureError, match="does not match"):
        verify("GET", "/ap/actors/th?page=3", headers, b"", lookup(keys[0]))


def later_date(headers: dict[str, str]) -> dict[str, str]:
    moment = parsedate_to_datetime(headers["Date"]) + timedelta(seconds=1)
    return {**headers, "Date": format_datetime(moment, usegmt=True)}


@pytest.mark.parametrize("change, reason", [
    (lambda h, b: (h, b + b" "), "Digest SHA-256 does not match the body"),
    (lambda h, b: ({**h, "Content-Type": "application/json"}, b), "signature does not match"),
    (lambda h, b: (later_date(h), b), "signature does not match"),
    (lambda h, b: ({**h, "Host": "other.example.org"}, b), "signature does not match"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "Signature"}, b), "not signed"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "Digest"}, b), "no SHA-256 or SHA-512 Digest"),
])
def test_a_changed_cavage_request_fails_with_a_reason(
        keys: tuple[SiteKey, SiteKey], change: Any, reason: str) -> None:
    headers, body = change(signed_post(keys[0]), BODY)
    with pytest.raises(SignatureError, match=reason):
        verify("POST", "/ap/inbox", headers, body, lookup(keys[0]))


def test_a_changed_path_fails(keys: tuple[SiteKey, SiteKey]) -> None:
    with pytest.raises(SignatureError, match="signature does not match"):
        verify("POST", "/ap/actors/th/inbox", signed_post(keys[0]), BODY, lookup(keys[0]))


def test_a_date_more_than_an_hour_away_fails(keys: tuple[SiteKey, SiteKey]) -> None:
    now = time.time()
    for skew in (-3590, 3590):  # within the hour: clocks differ
        verify("POST", "/ap/inbox", signed_post(keys[0], now=now + skew), BODY, lookup(keys[0]), now=now)
    for skew in (-3700, 3700):
        with pytest.raises(SignatureError, match="Date is .* from now, more than 3600 s"):
            verify("POST", "/ap/inbox", signed_post(keys[0], now=now + skew), BODY, lookup(keys[0]), now=now)


def test_another_key_fails(keys: tuple[SiteKey, SiteKey]) -> None:
    with pytest.raises(SignatureError, match="signature does not match"):
        verify("POST", "/ap/inbox", signed_post(keys[0]), BODY, lookup(keys[1]))
    with pytest.raises(SignatureError, match="no key"):  # the lookup's reason is the reason
        verify("POST", "/ap/inbox", signed_post(keys[0]), BODY, lookup(keys[0], "https://x.example/k"))


def test_a_post_whose_signature_leaves_out_the_digest_fails(keys: tuple[SiteKey, SiteKey]) -> None:
    headers = signed_post(keys[0])
    headers["Signature"] = headers["Signature"].replace(" digest content-type", "")
    with pytest.raises(SignatureError, match="does not cover digest"):
        verify("POST", "/ap/inbox", headers, BODY, lookup(keys[0]))


def test_the_public_authority_stands_for_a_host_a_proxy_changed(keys: tuple[SiteKey, SiteKey]) -> None:
    headers = signed_post(keys[0], url="https://localhost:8443/ap/inbox")
    behind_proxy = {**headers, "Host": "localhost"}  # nginx's Host $host drops the port
    with pytest.raises(SignatureError, match="signature does not match"):
        verify("POST", "/ap/inbox", behind_proxy, BODY, lookup(keys[0]))
    assert verify("POST", "/ap/inbox", behind_proxy, BODY, lookup(keys[0]), authority="localhost:8443")


# --- RFC 9421, signed by http-message-signatures' own signer ---------------------------------

@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def rfc9421(private: Any, algorithm: Any, body: bytes = BODY, url: str = INBOX,
            created: datetime | None = None, alg: bool = True) -> dict[str, str]:
    request = Request("POST", url, {"Host": url.split("/")[2], "Content-Type": "application/activity+json"})
    resolver = MappingKeyResolver(public_keys={}, private_keys={KEY_ID: private})
    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver)
    signer.sign(request, key_id=KEY_ID, label="sig1", created=created or datetime.now(UTC), include_alg=alg,
                covered_component_ids=("@method", "@target-uri", "@authority", "content-type"), body=body)
    return request.headers


def private_key(pair: SiteKey) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pair.private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.mark.parametrize("alg", [True, False])  # Fedify names alg; without it, the key's type decides
def test_an_rfc9421_signature_passes(keys: tuple[SiteKey, SiteKey], alg: bool) -> None:
    headers = rfc9421(private_key(keys[0]), algorithms.RSA_V1_5_SHA256, alg=alg)
    assert "Content-Digest" in headers and "Signature-Input" in headers
    assert verify("POST", "/ap/inbox", headers, BODY, lookup(keys[0])).owner == ACTOR


def test_an_ed25519_rfc9421_signature_passes() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    headers = rfc9421(private, algorithms.ED25519)
    assert verify("POST", "/ap/inbox", headers, BODY, lambda k: RemoteKey(k, ACTOR, public)).owner == ACTOR


def test_a_changed_rfc9421_request_fails_with_a_reason(keys: tuple[SiteKey, SiteKey]) -> None:
    headers = rfc9421(private_key(keys[0]), algorithms.RSA_V1_5_SHA256)
    with pytest.raises(SignatureError, match="Content-Digest does not match the message body"):
        verify("POST", "/ap/inbox", headers, BODY + b" ", lookup(keys[0], "no key is asked for"))
    with pytest.raises(SignatureError, match="does not hold"):
        verify("POST", "/ap/inbox", {**headers, "Content-Type": "text/plain"}, BODY, lookup(keys[0]))
    with pytest.raises(SignatureError, match="does not hold"):
        verify("POST", "/ap/actors/th/inbox", headers, BODY, lookup(keys[0]))
    with pytest.raises(SignatureError, match="does not hold"):
        verify("POST", "/ap/inbox", headers, BODY, lookup(keys[1]))
    old = rfc9421(private_key(keys[0]), algorithms.RSA_V1_5_SHA256,
                  created=datetime.fromtimestamp(time.time() - 7200, UTC))
    with pytest.raises(SignatureError, match="created is -7200 s from now"):
        verify("POST", "/ap/inbox", old, BODY, lookup(keys[0]))


def test_an_rfc9421_signature_must_cover_the_target(keys: tuple[SiteKey, SiteKey]) -> None:
    request = Request("POST", INBOX, {"Host": "feeds.example.org"})
    HTTPMessageSigner(signature_algorithm=algorithms.RSA_V1_5_SHA256, key_resolver=MappingKeyResolver(
        public_keys={}, private_keys={KEY_ID: private_key(keys[0])})).sign(
        request, key_id=KEY_ID, covered_component_ids=("@method",), body=BODY)
    with pytest.raises(SignatureError, match="does not cover @method and @target-uri"):
        verify("POST", "/ap/inbox", request.headers, BODY, lookup(keys[0]))


# RFC 9421 Appendix B.2.3 (full coverage, rsa-pss-sha512, no alg parameter): the RFC's own request,
# signature and test key (test-key-rsa-pss).
RFC_KEY = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----
"""
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEm"
                      "THWXvJwew==:",
    "Content-Length": "18",
    "Signature-Input": 'sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" '
                       '"content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"',
    "Signature": "sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVx"
                 "FkeGt683+qRpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7Ks"
                 "LNmvKiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim"
                 "5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:",
}


def test_the_rfc_s_own_example_verifies() -> None:
    def find(key_id: str) -> RemoteKey:
        return RemoteKey(key_id, "https://example.com/", RFC_KEY)
    body, then = b'{"hello": "world"}', 1618884473.0
    found = verify("POST", "/foo?param=Value&Pet=dog", RFC_HEADERS, body, find, now=then)
    assert found.key_id == "test-key-rsa-pss"
    with pytest.raises(SignatureError, match="Content-Digest does not match the message body"):
        verify("POST", "/foo?param=Value&Pet=dog", RFC_HEADERS, b'{"hello": "World"}', find, now=then)
    with pytest.raises(SignatureError, match="does not hold"):
        verify("POST", "/foo?param=Value&Pet=cat", RFC_HEADERS, body, find, now=then)


def test_an_hs2019_signature_with_created_passes(keys: tuple[SiteKey, SiteKey]) -> None:
    """hs2019 with (created) and (expires) instead of Date, as some servers sign (bare numbers)."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    created, digest = int(time.time()), "SHA-256=" + base64.b64encode(hashlib.sha256(BODY).digest()).decode()

    def headers_for(expires: int) -> dict[str, str]:
        text = (f"(request-target): post /ap/inbox\n(created): {created}\n(expires): {expires}\n"
                f"host: feeds.example.org\ndigest: {digest}")
        signature = base64.b64encode(private_key(keys[0]).sign(text.encode(), padding.PKCS1v15(),
                                                               hashes.SHA256())).decode()
        return {"Host": "feeds.example.org", "Digest": digest, "Signature": (
            f'keyId="{KEY_ID}",algorithm="hs2019",created={created},expires={expires},'
            f'headers="(request-target) (created) (expires) host digest",signature="{signature}"')}
    assert verify("POST", "/ap/inbox", headers_for(created + 300), BODY, lookup(keys[0])).owner == ACTOR
    with pytest.raises(SignatureError, match="expired"):
        verify("POST", "/ap/inbox", headers_for(created - 1), BODY, lookup(keys[0]))


def test_an_rfc9421_post_must_sign_its_content_digest(keys: tuple[SiteKey, SiteKey]) -> None:
    request = Request("POST", INBOX, {"Host": "feeds.example.org"})
    HTTPMessageSigner(signature_algorithm=algorithms.RSA_V1_5_SHA256, key_resolver=MappingKeyResolver(
        public_keys={}, private_keys={KEY_ID: private_key(keys[0])})).sign(
        request, key_id=KEY_ID, covered_component_ids=("@method", "@target-uri"))  # no body: no digest
    with pytest.raises(SignatureError, match="does not cover content-digest"):
        verify("POST", "/ap/inbox", request.headers, BODY, lookup(keys[0]))
    assert verify("POST", "/ap/inbox", request.headers, b"", lookup(keys[0])).owner == ACTOR


# A Follow signed by Fedify 2.3.6 (@fedify/fedify's signRequest, both of its schemes; the key is the
# sender's RSA key), recorded once with the follower app's Node: Fedify's own bytes, checked without Node.
FEDIFY = json.loads((Path(__file__).parent / "golden" / "fedify_signed.json").read_text())


@pytest.mark.parametrize("scheme", ["rfc9421", "cavage"])
def test_fedify_s_signatures_verify_behind_a_proxy(scheme: str) -> None:
    headers = {**FEDIFY[scheme], "host": "localhost"}  # nginx's Host $host: the public port is gone
    then = parsedate_to_datetime(headers["date"]).timestamp()
    owner = FEDIFY["key_id"].split("#")[0]

    def find(key_id: str) -> RemoteKey:
        assert key_id == FEDIFY["key_id"]
        return RemoteKey(key_id, owner, FEDIFY["public_pem"])
    body = FEDIFY["body"].encode()
    found = verify("POST", "/ap/inbox", headers, body, find, authority="localhost:8443", now=then)
    assert found.owner == owner
    with pytest.raises(SignatureError, match="does not match"):
        verify("POST", "/ap/inbox", headers, body + b" ", find, authority="localhost:8443", now=then)
    with pytest.raises(SignatureError, match="does not match|does not hold"):
        verify("POST", "/ap/inbox", headers, body, find, authority="localhost:8444", now=then)


FIELD = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80)
SIGNATURE_PARTS = st.lists(st.one_of(
    FIELD, st.just('keyId="k"'), st.just('algorithm="hs2019"'), st.just('algorithm="rsa-sha256"'),
    st.just('headers="(request-target) host date digest"'), st.just('headers="(created) (expires)"'),
    st.just("created=12"), st.just('signature="AAAA"'), st.just('signature="%%%"')), max_size=6)


@given(signature=SIGNATURE_PARTS.map(",".join),
       date=st.one_of(FIELD, st.just("Mon, 07 Dec 2026 12:00:00 GMT")),
       digest=st.one_of(FIELD, st.just("SHA-256=xyz"), st.just("sha-512=")),
       signature_input=st.one_of(st.none(), FIELD, st.just('sig1=("@method" "@target-uri");keyid="k"'),
                                 st.just('sig1="x";keyid=1'), st.just('a=("@method"), b=("@path")')),
       body=st.binary(max_size=40))
def test_any_signature_header_is_a_signature_error_or_a_pass(
        keys: tuple[SiteKey, SiteKey], signature: str, date: str, digest: str, signature_input: str | None,
        body: bytes) -> None:
    """Whatever a sender puts in these headers, verify answers with SignatureError (the inbox's 401),
    never another exception (a 500)."""
    headers = {"Host": "feeds.example.org", "Signature": signature, "Date": date, "Digest": digest}
    if signature_input is not None:
        headers["Signature-Input"], headers["Content-Digest"] = signature_input, digest
    try:
        verify("POST", "/ap/inbox", headers, body, lookup(keys[0], "k"))
    except SignatureError:
        pass
