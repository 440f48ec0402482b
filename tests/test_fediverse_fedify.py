"""Issue 22 against a real implementation: a follower built on Fedify (tests/fedify/) follows
feedsvc's actors and receives what a publish, a correction and a withdrawal send.

feedsvc runs as in production: gunicorn with the shipped config (which starts the deliverer)
behind the shipped nginx, given a TLS listener with a test CA (Fedify resolves `acct:` handles
over https only), FEEDSVC_BASE_URL=https://localhost:PORT. Fedify trusts the CA through
NODE_EXTRA_CA_CERTS and may reach loopback (`allowPrivateAddress`); feedsvc may reach the
follower on loopback (FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE=loopback).

Fedify hands an activity to its inbox listeners only once it has verified the request's HTTP
signature with the key the activity's actor publishes: what the follower lists as `received` is
signed by us as Fedify checks it; anything it refused is listed as `unverified`, with Fedify's
reason, and fails the test. The tests run in order, each going on from the one before.
"""
from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedsvc.config import BUNDLED_DATA

from . import servers
from .apsamples import built_documents
from .fedify_follower import Follower, start_follower
from .tls import Certificates, make_certificates, start_tls_nginx

RFC9421 = "rfc9421"
CAVAGE = "draft-cavage-http-signatures-12"
OLD_RELEASES = 25  # Thailand releases in the dataset from the start, with the bundled ones
SCHEDULED_IN_S = 8  # a scheduled release goes live this long after it is written
# A moment in the past all the releases below are dated from: visible at once when written.
START = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)


@dataclass
class World:
    """feedsvc behind TLS, its dataset folder, and the Fedify follower."""

    origin: str  # https://localhost:PORT, feedsvc's FEEDSVC_BASE_URL without the slash
    host: str  # localhost:PORT, the host part of a handle
    data: Path
    follower: Follower
    gunicorn: servers.Server
    follows: dict[str, str]  # handle -> the id of the Follow the follower sent

    def actor(self, handle: str) -> str:
        return f"{self.origin}/ap/actors/{handle}"

    def release(self, rid: str) -> str:
        return f"{self.origin}/releases/{rid}"

    def write(self, rid: str, **fields: Any) -> None:
        """Write (or rewrite) a Thailand release into the dataset, as an editor would."""
        release = {"id": rid, "type": "press-release", "title": f"Thailand release {rid}",
                   "published": (START + timedelta(minutes=1)).isoformat(),
                   "countries": ["TH"], "topics": ["social-security"],
                   "summary": f"What {rid} says about social security in Thailand.", **fields}
        text = yaml.safe_dump(release, allow_unicode=True, sort_keys=False)
        path = self.data / "releases" / f"{rid}.yaml"
        temporary = path.with_name(f".{rid}.yaml.tmp")  # hidden: the watcher skips it
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fediverse")


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Certificates:
    return make_certificates(workdir)


@pytest.fixture(scope="module")
def follower(workdir: Path, certs: Certificates) -> Iterator[Follower]:
    started = start_follower(workdir, certs.ca)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def world(workdir: Path, certs: Certificates, follower: Follower) -> Iterator[World]:
    data = workdir / "data"
    shutil.copytree(BUNDLED_DATA, data)
    for number in range(OLD_RELEASES):  # th's outbox: more than a page
        release = {"id": f"fedify-old-{number:02d}", "type": "press-release",
                   "title": f"Old release {number}", "published": f"2003-01-{number + 1:02d}",
                   "countries": ["TH"], "topics": ["social-security"], "summary": "Old."}
        (data / "releases" / f"{release['id']}.yaml").write_text(yaml.safe_dump(release))
    port = servers.free_port()
    origin = f"https://localhost:{port}"
    state = str(workdir / "state")
    app = servers.start_gunicorn(workdir, env={
        "FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": origin + "/",
        "FEEDSVC_STATE_DIR": state, "FEEDSVC_SNAPSHOT_DIR": state,
        "FEEDSVC_ACTIVITYPUB": "owner", "FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE": "loopback"})
    try:
        front = start_tls_nginx(workdir, port, app.port, certs)
        # The deliverer's first start records the archive as already sent (no flood); a release
        # written before it has looked would be recorded too, never sent: wait for that look.
        wait_for_log(app, "fediverse ledger:")
    except BaseException:
        app.stop()
        raise
    try:
        yield World(origin, f"localhost:{port}", data, follower, app, {})
    finally:
        front.stop()
        app.stop()


def wait_for_log(server: servers.Server, text: str, deadline_s: float = 60.0) -> None:
    """Wait until a server's log holds `text`, or fail with its tail."""
    deadline = time.monotonic() + deadline_s
    while text not in server.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in {server.name}'s log:\n{server.tail()}"
        time.sleep(0.1)


@pytest.mark.parametrize("kind", list(built_documents()))
def test_fedify_reads_every_document_we_build_whole(follower: Follower, kind: str) -> None:
    """Fedify parses each document to its class and writes back every property we send:
    none is unknown to it (Mastodon's terms included)."""
    document = built_documents()[kind]
    parsed = follower.call("/control/parse", {"document": document})
    assert parsed["type"] == kind
    missing = sorted(set(document) - set(parsed["jsonld"]) - {"@context"})
    assert not missing, f"Fedify dropped {missing} of our {kind}: {parsed['jsonld']}"


def test_fedify_drops_a_property_it_does_not_know(follower: Follower) -> None:
    """What makes the test above worth having: an unknown term does not come back."""
    document = {"@context": ["https://www.w3.org/ns/activitystreams",
                             {"colour": "https://x.example/ns#colour"}],
                "id": "https://x.example/a", "type": "Article", "name": "A", "colour": "red"}
    parsed = follower.call("/control/parse", {"document": document})
    assert parsed["jsonld"]["name"] == "A" and "colour" not in parsed["jsonld"]


def verified_only(world: World) -> None:
    """Fail if Fedify refused any of our requests (a signature it could not verify)."""
    unverified = world.follower.inbox()["unverified"]
    assert not unverified, f"Fedify could not verify: {unverified}\n{world.gunicorn.tail(40)}"


def test_the_follower_reaches_feedsvc_through_the_tls_front(world: World) -> None:
    got = world.follower.call("/control/fetch", {"url": f"{world.origin}/feeds/all.json"})
    assert got["status"] == 200, got
    assert json.loads(got["body"])["items"], "the JSON Feed, read through TLS, lists releases"


@pytest.mark.parametrize(("path", "kind", "same_as"), [
    ("/ap/actors/th", "Service", None), ("/ap/actors/all", "Service", None),
    ("/countries/th", "Service", "/ap/actors/th"),
    ("/topics/social-security", "Service", "/ap/actors/social-security"),
    ("/releases/pr-2004-007", "Article", None),
    ("/ap/actors/th/outbox", "OrderedCollection", None),
    ("/ap/actors/th/followers", "OrderedCollection", None),
])
def test_fedify_dereferences_our_object_ids(world: World, path: str, kind: str,
                                            same_as: str | None) -> None:
    found = world.follower.lookup(world.origin + path)
    assert found["type"] == kind, found
    assert found["jsonld"]["id"] == world.origin + (same_as or path)


def test_fedify_walks_th_s_outbox_page_by_page(world: World) -> None:
    walked = world.follower.call("/control/outbox", {"url": f"{world.actor('th')}/outbox"})
    th = [path for path in (world.data / "releases").glob("*.yaml")
          if "TH" in yaml.safe_load(path.read_text(encoding="utf-8")).get("countries", [])]
    assert len(th) > 20, "more than a page of releases (20)"
    assert walked["totalItems"] == len(walked["items"]) == len(th)
    assert {item["type"] for item in walked["items"]} == {"Announce"}
    assert {item["object"] for item in walked["items"]} == {
        world.release(path.stem) for path in th}


@pytest.mark.parametrize("handle", ["th", "all", "social-security"])
def test_an_actor_id_gives_back_its_handle_by_webfinger(world: World, handle: str) -> None:
    # What Fedify's getActorHandle does (which cannot itself write a host with a port): the
    # actor id asked of WebFinger names the acct: handle, which leads back to the same actor,
    # whose preferredUsername is the handle.
    acct = f"acct:{handle}@{world.host}"
    by_id = world.follower.call("/control/webfinger", {"resource": world.actor(handle)})
    assert acct in [by_id.get("subject"), *by_id.get("aliases", [])], by_id
    by_acct = world.follower.call("/control/webfinger", {"resource": acct})
    selves = [link["href"] for link in by_acct["links"]
              if link["rel"] == "self" and link.get("type") == "application/activity+json"]
    assert selves == [world.actor(handle)], by_acct
    assert world.follower.lookup(world.actor(handle))["jsonld"]["preferredUsername"] == handle


def test_fedify_reads_our_nodeinfo(world: World) -> None:
    nodeinfo = world.follower.call("/control/nodeinfo", {"url": world.origin})["nodeinfo"]
    assert "activitypub" in nodeinfo["protocols"]
    assert nodeinfo["software"]["name"] == "feedsvc"


def test_follow_th_by_its_handle_is_accepted(world: World) -> None:
    # Fedify signs its Follow with RFC 9421 first, and falls back to draft-cavage-12 if we
    # answer 401; it remembers which one we accepted: RFC 9421, at the first knock.
    assert world.follower.knock(world.origin, RFC9421) == RFC9421
    answer = world.follower.follow(f"@th@{world.host}")  # WebFinger, then the actor document
    assert answer["actor"] == world.actor("th")
    world.follows["th"] = answer["follow"]
    accept = world.follower.wait_for(
        lambda a: a["type"] == "Accept" and a["actor"] == world.actor("th"), "Accept from th")
    assert accept["object"] == answer["follow"]
    assert accept["recipient"] in (None, "alice")
    assert world.follower.knock(world.origin) == RFC9421, "our inbox refused RFC 9421"
    verified_only(world)


def as_list(value: Any) -> list[Any]:
    """A compacted JSON-LD value as a list (compaction writes a one-item list as the item)."""
    return value if isinstance(value, list) else [value]


def addressed(activity: dict[str, Any], world: World, handle: str) -> None:
    """Check an activity is public and copied to the sending actor's followers, and came to
    the follower's shared inbox (one delivery per shared inbox), not to alice's own."""
    assert "as:Public" in as_list(activity["activity"]["to"]), activity["activity"]
    assert f"{world.actor(handle)}/followers" in as_list(activity["activity"]["cc"])
    assert activity["recipient"] is None, "delivered to alice's inbox, not the shared one"


def following(world: World, *handles: str) -> None:
    """Fail at once (not after a minute's wait) when an earlier test's Follow failed."""
    missing = [handle for handle in handles if handle not in world.follows]
    assert not missing, f"the follower does not follow {missing}: see the tests above"


def test_a_new_thailand_release_is_announced_by_th(world: World) -> None:
    following(world, "th")
    world.write("fedify-th-1")
    url = world.release("fedify-th-1")
    announce = world.follower.wait_for(
        lambda a: a["type"] == "Announce" and a["object"] == url, "Announce of fedify-th-1")
    assert announce["actor"] == world.actor("th")
    article = announce["objectJson"]  # embedded, or fetched by Fedify from the release page
    assert article["type"] == "Article" and article["id"] == url
    assert article["name"] == "Thailand release fedify-th-1"
    assert {tag["name"] for tag in as_list(article["tag"]) if tag["type"] == "Hashtag"} == {
        "#Thailand", "#SocialSecurity"}
    addressed(announce, world, "th")
    verified_only(world)


def test_following_all_then_a_release_is_created_by_the_site_actor(world: World) -> None:
    following(world, "th")
    # This Follow is signed with draft-cavage-12 (what Mastodon sends) at the first knock.
    world.follower.knock(world.origin, CAVAGE)
    answer = world.follower.follow(f"@all@{world.host}")
    assert answer["actor"] == world.actor("all")
    world.follows["all"] = answer["follow"]
    world.follower.wait_for(lambda a: a["type"] == "Accept" and a["object"] == answer["follow"],
                            "Accept from all")
    assert world.follower.knock(world.origin) == CAVAGE, "our inbox refused draft-cavage-12"
    world.write("fedify-th-2")
    url = world.release("fedify-th-2")
    create = world.follower.wait_for(
        lambda a: a["type"] == "Create" and a["object"] == url, "Create of fedify-th-2")
    assert create["actor"] == world.actor("all")
    assert create["objectJson"]["type"] == "Article"
    assert create["objectJson"]["attributedTo"] == world.actor("all")
    addressed(create, world, "all")
    world.follower.wait_for(lambda a: a["type"] == "Announce" and a["object"] == url,
                            "Announce of fedify-th-2 by th")
    verified_only(world)


def test_a_correction_is_sent_as_an_update(world: World) -> None:
    following(world, "th", "all")
    note = "The scheme covers 2 million workers, not 200,000."
    world.write("fedify-th-2", corrections=[
        {"date": (START + timedelta(minutes=30)).isoformat(), "note": note}])
    url = world.release("fedify-th-2")
    update = world.follower.wait_for(
        lambda a: a["type"] == "Update" and a["object"] == url, "Update of fedify-th-2")
    assert update["actor"] == world.actor("all")
    assert update["objectJson"]["type"] == "Article"
    assert update["objectJson"]["updated"] != update["objectJson"]["published"]
    addressed(update, world, "all")
    verified_only(world)


def test_a_withdrawal_is_sent_as_a_delete_and_the_announce_is_undone(world: World) -> None:
    following(world, "th", "all")
    world.write("fedify-th-2", withdrawn=(START + timedelta(minutes=45)).isoformat(),
                withdrawn_note="Withdrawn at the request of the ministry.")
    url = world.release("fedify-th-2")
    delete = world.follower.wait_for(
        lambda a: a["type"] == "Delete" and a["object"] == url, "Delete of fedify-th-2")
    assert delete["actor"] == world.actor("all")
    assert delete["objectJson"]["type"] == "Tombstone"
    addressed(delete, world, "all")
    undo = world.follower.wait_for(
        lambda a: a["type"] == "Undo" and a["actor"] == world.actor("th"), "Undo by th")
    undone = undo["objectJson"]
    assert undone["type"] == "Announce" and undone["object"] == url
    addressed(undo, world, "th")
    verified_only(world)


def test_a_scheduled_release_is_announced_when_it_goes_live(world: World) -> None:
    following(world, "th")
    live = (datetime.now(UTC) + timedelta(seconds=SCHEDULED_IN_S)).replace(microsecond=0)
    world.write("fedify-th-3", published=live.isoformat())
    url = world.release("fedify-th-3")

    def next_scheduled() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{world.gunicorn.port}/readyz",
                                    timeout=10) as response:
            found: str | None = json.loads(response.read())["dataset"]["next_scheduled"]
            return found

    # Loaded while still scheduled (served nowhere yet): it goes live with no file change.
    while next_scheduled() is None or datetime.fromisoformat(str(next_scheduled())) != live:
        assert datetime.now(UTC) < live, f"the file was not loaded within {SCHEDULED_IN_S} s"
        time.sleep(0.1)
    announce = world.follower.wait_for(
        lambda a: a["type"] == "Announce" and a["object"] == url, "Announce of fedify-th-3")
    assert datetime.fromisoformat(announce["receivedAt"]) >= live
    addressed(announce, world, "th")
    verified_only(world)


def test_an_undone_follow_removes_the_follower(world: World) -> None:
    following(world, "th", "all")

    def followers(handle: str) -> int:  # fetched afresh (Fedify's lookups are cached)
        got = world.follower.call("/control/fetch", {"url": f"{world.actor(handle)}/followers",
                                                     "accept": "application/activity+json"})
        count: int = json.loads(got["body"])["totalItems"]
        return count

    assert (followers("th"), followers("all")) == (1, 1)
    world.follower.call("/control/unfollow", {"follow": world.follows.pop("th")})
    assert (followers("th"), followers("all")) == (0, 1)  # the Undo is handled in its POST
    verified_only(world)
