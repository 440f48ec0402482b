"""Country URLs forgive their case, and a wrong code or a country's name gets the right code."""
from __future__ import annotations

import pycountry
import pytest
from flask.testing import FlaskClient

from .conftest import BASE_URL

# Every URL that names a country, in the case a person may type it, and its one lowercase form.
UPPER = [("/countries/TH", "countries/th"), ("/embed/countries/TH", "embed/countries/th"),
         ("/countries/Kh?limit=2", "countries/kh?limit=2"),
         ("/embed/countries/tH?theme=dark", "embed/countries/th?theme=dark"),
         ("/feeds/countries/TH.rss?topic=social-security",
          "feeds/countries/th.rss?topic=social-security")]


@pytest.mark.parametrize("path,lower", UPPER)
def test_a_country_in_any_case_moves_to_its_lowercase_url(client: FlaskClient, path: str,
                                                          lower: str) -> None:
    moved = client.get(path)
    assert moved.status_code == 301
    assert moved.headers["Location"] == f"{BASE_URL}{lower}"
    # The lowercase URL is the page itself, not another redirect.
    assert client.get(moved.headers["Location"].removeprefix(BASE_URL.rstrip("/"))).status_code == 200


@pytest.mark.parametrize("path", ["/countries/UK", "/embed/countries/uk", "/feeds/countries/UK.atom",
                                  "/countries/United%20Kingdom"])
def test_uk_is_refused_naming_gb(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "text/plain"})
    assert response.status_code == 404
    assert "Did you mean gb (United Kingdom)" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/countries/Philippines", "/embed/countries/philippines",
                                  "/feeds/countries/Philippines.json"])
def test_a_country_name_is_refused_naming_its_code(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Accept": "text/plain"})
    assert response.status_code == 404
    assert "Did you mean ph (Philippines)?" in response.get_data(as_text=True)


def test_a_page_for_people_shows_the_suggestion(client: FlaskClient) -> None:
    response = client.get("/countries/UK", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "gb (United Kingdom)" in response.get_data(as_text=True)


def test_a_name_is_searched_among_the_countries_alone(client: FlaskClient,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # pycountry's subdivisions (5,000 names) cost each worker ~5 MB and ~100 ms on its first
    # unknown country, and every search after it ~10 ms.
    loads: list[bool] = []
    monkeypatch.setattr(pycountry.subdivisions, "_is_loaded", False)
    monkeypatch.setattr(pycountry.subdivisions, "_load", lambda: loads.append(True))
    for path in ("/countries/Thailand", "/embed/countries/philippines", "/feeds/countries/Viet%20Nam.rss"):
        response = client.get(path, headers={"Accept": "text/plain"})
        assert response.status_code == 404 and "Did you mean" in response.get_data(as_text=True)
    for junk in ("x" * 5000, "th.rss%3Cscript%3E", "12345"):
        response = client.get(f"/countries/{junk}", headers={"Accept": "text/plain"})
        assert response.status_code == 404 and "Did you mean" not in response.get_data(as_text=True)
        assert len(response.data) < 300
    assert loads == []


@pytest.mark.parametrize("path", ["/countries/zz", "/embed/countries/xx", "/feeds/countries/zz.rss",
                                  "/countries/england"])
def test_a_code_that_names_no_country_suggests_none(client: FlaskClient, path: str) -> None:
    # Regions are not searched: zz (in Abruzzo) sends no one to Italy, England no one to gb.
    response = client.get(path, headers={"Accept": "text/plain"})
    assert response.status_code == 404 and "Did you mean" not in response.get_data(as_text=True)
