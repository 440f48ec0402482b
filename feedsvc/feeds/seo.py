"""What release pages tell search engines and link previews: JSON-LD NewsArticle, safely written."""
from __future__ import annotations

import json
from typing import Any

from ..dataset.records import Release, Site
from .urls import Urls

# Inside <script>, "</script>" or "<!--" in a title would end or change the block: JSON lets
# these characters be written as escapes, which parse to the same text.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(data: Any) -> str:
    """Return JSON that is safe to put between <script> and </script> as it is."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True).translate(_SCRIPT_SAFE)


def news_article(release: Release, site: Site, urls: Urls, logo: str | None = None) -> dict[str, Any]:
    """Describe a release as a schema.org NewsArticle."""
    publisher: dict[str, Any] = {"@type": "Organization", "name": site.publisher}
    if logo:
        publisher["logo"] = {"@type": "ImageObject", "url": logo}
    article: dict[str, Any] = {
        "@context": "https://schema.org", "@type": "NewsArticle",
        "mainEntityOfPage": urls.release(release.id),
        "headline": release.title[:110],  # longer headlines are cut by search engines
        "description": release.summary,
        "datePublished": release.published.isoformat(),
        "dateModified": release.modified.isoformat(),
        "inLanguage": release.language,
        "publisher": publisher,
        "author": {"@type": "Organization", "name": site.publisher},
    }
    if release.image:
        article["image"] = [urls.media(release.image.src, release.image.digest)]
    if release.dateline:
        article["dateline"] = release.dateline
    return article
