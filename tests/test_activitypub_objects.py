"""The Article of a release and the activities about it (activitypub/objects.py)."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from feedsvc.activitypub import objects
from feedsvc.dataset.media import Media
from feedsvc.dataset.records import Correction, Release
from feedsvc.feeds.urls import Urls

BASE = "https://feeds.example.org/"
URLS = Urls(BASE)
PUBLISHED = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
RELEASE = Release(
    id="pr-2024-7", type="press-release", title="Decent work <for> domestic workers",
    published=PUBLISHED, updated=None, dateline="BANGKOK", countries=("TH", "LA"),
    topics=("social-security",), summary="A new study & its findings.", body=None, url=None,
    language="en",
    image=Media("photos/a.jpg", "Workers in Bangkok", "image/jpeg", 1234, "ab" * 32))


def test_an_article_is_the_release_page_by_the_site_actor() -> None:
    article = objects.article(RELEASE, URLS)
    page = f"{BASE}releases/pr-2024-7"
    assert article["type"] == "Article"
    assert article["id"] == article["url"] == page
    assert article["attributedTo"] == f"{BASE}ap/actors/all"
    assert article["name"] == RELEASE.title and article["summary"] == RELEASE.summary
    # content: the summary (escaped), then a link to the page
    assert article["content"] == (f"<p>A new study &amp; its findings.</p>"
                                  f'<p><a href="{page}">{page}</a></p>')
    assert article["contentMap"] == {"en": article["content"]}
    assert article["published"] == "2024-03-05T09:00:00Z" and "updated" not in article
    assert article["to"] == [objects.PUBLIC] and article["cc"] == [f"{BASE}ap/actors/all/followers"]
    assert article["attachment"] == [{
        "type": "Image", "mediaType": "image/jpeg", "name": "Workers in Bangkok",
        "url": f"{BASE}media/photos/a.jpg?v={'ab' * 8}"}]


def test_hashtags_are_camel_case_letters_linking_our_pages() -> None:
    tags = objects.article(RELEASE, URLS)["tag"]
    assert {(t["type"], t["name"], t["href"]) for t in tags} == {
        ("Hashtag", "#SocialSecurity", f"{BASE}topics/social-security"),
        ("Hashtag", "#Thailand", f"{BASE}countries/th"),
        ("Hashtag", "#Laos", f"{BASE}countries/la")}
    assert objects.hashtag("Côte d’Ivoire") == "#CôteDIvoire"
    assert objects.hashtag("trafficking-and-child-labour") == "#TraffickingAndChildLabour"


def test_a_correction_is_an_update_with_a_new_id_and_its_date() -> None:
    corrected = replace(RELEASE, updated=datetime(2024, 3, 6, tzinfo=UTC),
                        corrections=(Correction(datetime(2024, 3, 6, tzinfo=UTC), "Fixed."),))
    first = objects.create(objects.article(RELEASE, URLS))
    again = objects.create(objects.article(RELEASE, URLS))
    update = objects.update(objects.article(corrected, URLS))
    assert first == again  # stable: the same release gives the same activity, id included
    assert first["type"] == "Create" and update["type"] == "Update"
    assert first["object"]["id"] == update["object"]["id"] == f"{BASE}releases/pr-2024-7"
    assert update["object"]["updated"] == "2024-03-06T00:00:00Z"
    assert first["id"].startswith(f"{BASE}ap/activities/create/all/pr-2024-7/")
    assert update["id"].startswith(f"{BASE}ap/activities/update/all/pr-2024-7/")
    assert "@context" not in first["object"] and first["actor"] == f"{BASE}ap/actors/all"


def test_a_country_announces_the_article_and_undoes_it() -> None:
    article = objects.article(RELEASE, URLS)
    boost = objects.announce("th", article)
    assert boost["type"] == "Announce" and boost["actor"] == f"{BASE}ap/actors/th"
    assert boost["object"] == article["id"]
    assert boost["cc"] == [f"{BASE}ap/actors/th/followers", f"{BASE}ap/actors/all"]
    undo = objects.undo(boost)
    assert undo["type"] == "Undo" and undo["actor"] == boost["actor"]
    assert undo["object"]["id"] == boost["id"] and undo["id"] != boost["id"]


def test_a_withdrawal_deletes_with_a_tombstone() -> None:
    gone = objects.delete(f"{BASE}releases/pr-2024-7")
    assert gone["type"] == "Delete" and gone["actor"] == f"{BASE}ap/actors/all"
    assert gone["object"] == {"id": f"{BASE}releases/pr-2024-7", "type": "Tombstone"}
    assert gone["id"] == f"{BASE}ap/activities/delete/all/pr-2024-7/tombstone"


def test_accept_embeds_the_follow() -> None:
    follow = {"@context": objects.CONTEXT[0], "id": "https://social.example/f/1", "type": "Follow",
              "actor": "https://social.example/users/ann", "object": f"{BASE}ap/actors/th"}
    accepted = objects.accept(f"{BASE}ap/actors/th", follow)
    assert accepted["type"] == "Accept" and accepted["actor"] == f"{BASE}ap/actors/th"
    assert accepted["object"] == {k: v for k, v in follow.items() if k != "@context"}
    assert accepted["to"] == ["https://social.example/users/ann"]
