"""`monitor draw`: a watch list drawn from an article, as a user runs it (the CLI), from a file, an HTML page
and a URL served by a loopback server; the proposal must load (`monitor check`)."""

from __future__ import annotations

import html
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED, cli
from tests.servers import FeedFarm, Route, running

SOURCE = SHARED / "source" / "article.txt"
needs_source = pytest.mark.skipif(not SOURCE.is_file(), reason="../shared/source/article.txt is not here")

WIRE = """\
YEREVAN, Sept 19 (Reuters) - Azerbaijan launched an offensive on Tuesday against Armenian separatists in \
Nagorno-Karabakh, the Azerbaijani defence ministry said, in a move that threatens a new war in the South Caucasus.

Armenian Prime Minister Nikol Pashinyan said the operation aimed at ethnic cleansing. Pashinyan called on \
Russian peacekeepers in Nagorno-Karabakh to act.

The Economic Community of West African States (ECOWAS) had no part in the talks; ECOWAS officials said on \
Wednesday they were following Nagorno-Karabakh closely, as shelling was reported in Stepanakert.

Reporting by Felix Light; Editing by Mark Heinrich
"""

RUSSIAN = """\
Армения и Азербайджан обменялись обвинениями после обстрела у границы.

Премьер-министр Армении Никол Пашинян заявил, что Армения не допустит эскалации. По словам Пашиняна, \
переговоры продолжатся. Азербайджан обвинил Пашиняна в провокации, а Армения потребовала наблюдателей.
"""


def draw(*args: str) -> tuple[dict[str, Any], str]:
    """`monitor draw ... --json` and the same as keywords.toml."""
    as_json = cli("draw", *args, "--json")
    assert as_json.code == 0, as_json.stderr
    as_toml = cli("draw", *args)
    assert as_toml.code == 0, as_toml.stderr
    return json.loads(as_json.stdout), as_toml.stdout


def entity(proposal: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in proposal["entities"] if name in e["names"]), None)


def checks(text: str, folder: Path) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "keywords.toml").write_text(text, encoding="utf-8")
    result = cli("check", "--config-dir", str(folder))
    assert result.code == 0, result.stderr
    return result.stdout


@needs_source
def test_draw_proposes_the_source_articles_story(tmp_path: Path) -> None:
    proposal, toml = draw(str(SOURCE))
    for name in ("Nagorno-Karabakh", "Azerbaijan", "Armenia", "Lachin Corridor", "Yerevan", "Nikol Pashinyan",
                 "International Committee of the Red Cross"):  # fmt: skip
        assert entity(proposal, name) is not None, name
    khankendi = entity(proposal, "Khankendi")
    assert khankendi is not None and "Stepanakert" in khankendi["names"] and khankendi["kind"] == "place"
    assert "Степанакерт" in khankendi["names"]  # the gazetteer's other scripts
    assert entity(proposal, "Nikol Pashinyan")["kind"] == "person"  # type: ignore[index]
    assert [e["names"][0] for e in proposal["entities"][:3]] == ["Armenia", "Azerbaijan", "Nagorno-Karabakh"]
    assert checks(toml, tmp_path / "config").startswith("ok: 0 feeds, ")
    parsed = tomllib.loads(toml)
    assert parsed["schema"] == 1 and parsed["source"]["title"]
    assert parsed["entities"].keys() == {e["id"] for e in proposal["entities"]}
    # The rules ask for the story, not its countries: no rule fires on one country alone.
    for rule in proposal["rules"]:
        assert rule["query"] not in ("@armenia", "@azerbaijan")
    matched = cli("match", "--config-dir", str(tmp_path / "config"), "--text", "Armenia wins Eurovision semi-final")
    assert json.loads(matched.stdout)["matches"] == []
    story = cli("match", "--config-dir", str(tmp_path / "config"), "--text", "Shelling reported in Stepanakert")
    assert json.loads(story.stdout)["matches"]


@needs_source
def test_draw_from_a_url_with_navigation_and_ads_finds_what_the_text_gives(tmp_path: Path) -> None:
    paragraphs = [p.strip() for p in SOURCE.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    page = (
        "<html><head><title>Azerbaijan launches operation in Nagorno-Karabakh | Daily Planet</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a> "
        "<a href='/subscribe'>Subscribe to Daily Planet Premium</a></nav>"
        "<div class='ad'>Geneva Luxury Outlet: Rolex and Omega watches at half price</div>"
        "<article><h1>Azerbaijan launches operation in Nagorno-Karabakh</h1>"
        + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        + "</article><aside class='ad'>Sponsored: Visit Monaco with Grand Voyages Travel</aside>"
        "<footer>© 2023 Daily Planet Media Group. Contact us. Privacy policy.</footer></body></html>"
    )
    farm = FeedFarm()
    farm.routes["/news/karabakh"] = Route(page.encode(), content_type="text/html; charset=utf-8")
    config = tmp_path / "config"
    config.mkdir()
    (config / "feeds.toml").write_text("[fetch]\nallow_private_addresses = true\n", encoding="utf-8")
    (config / "keywords.toml").write_text('schema = 1\n[[rules]]\nid = "x"\nquery = "x"\n', encoding="utf-8")
    with running(farm):
        from_url, _ = draw(farm.url("/news/karabakh"), "--config-dir", str(config))
    from_text, _ = draw(str(SOURCE))
    url_names = [e["names"][0] for e in from_url["entities"]]
    text_names = [e["names"][0] for e in from_text["entities"]]
    # The page's headline weighs its names more; the same names come out.
    assert set(url_names[:10]) == set(text_names[:10])
    assert set(text_names) <= set(url_names)
    everything = json.dumps(from_url)
    for junk in ("Rolex", "Daily Planet", "Monaco", "Geneva", "Grand Voyages"):
        assert junk not in everything, junk
    assert from_url["source"]["title"].startswith("Azerbaijan launches operation")


def test_draw_leaves_out_credits_datelines_and_weekdays_and_finds_aliases(tmp_path: Path) -> None:
    article = tmp_path / "wire.txt"
    article.write_text(WIRE, encoding="utf-8")
    proposal, toml = draw(str(article))
    names = {n for e in proposal["entities"] for n in e["names"]}
    for credit in ("Reuters", "Tuesday", "Wednesday", "Felix Light", "Mark Heinrich", "Sept"):
        assert credit not in names, credit
    # The dateline's city is where it was filed from, not a place of the story (Yerevan stands among
    # Armenia's names only as its capital, how news names a government).
    assert "Yerevan" not in [e["names"][0] for e in proposal["entities"]]
    pashinyan = entity(proposal, "Nikol Pashinyan")
    assert pashinyan is not None and "Pashinyan" in pashinyan["names"] and pashinyan["kind"] == "person"
    assert "Prime Minister Nikol Pashinyan" not in names and "Armenian Prime Minister Nikol Pashinyan" not in names
    ecowas = entity(proposal, "Economic Community of West African States")
    assert ecowas is not None and "ECOWAS" in ecowas["names"] and ecowas["kind"] == "org"
    assert entity(proposal, "ECOWAS") is ecowas  # one entity, not two
    karabakh = entity(proposal, "Nagorno-Karabakh")
    assert (
        karabakh is not None
        and karabakh["count"] == 3
        and "Karabakh" not in (e["names"][0] for e in proposal["entities"])
    )
    assert checks(toml, tmp_path / "config").startswith("ok:")


def test_draw_gives_a_russian_names_forms(tmp_path: Path) -> None:
    article = tmp_path / "ru.txt"
    article.write_text(RUSSIAN, encoding="utf-8")
    proposal, toml = draw(str(article))
    assert proposal["language"] == "ru"
    pashinyan = [e for e in proposal["entities"] if any(n.startswith("Пашинян") for n in e["names"])]
    assert len(pashinyan) == 1  # Пашинян, Пашиняна: one person
    assert "Пашинян*" in pashinyan[0]["names"] or {"Никол Пашинян", "Пашиняна"} <= set(pashinyan[0]["names"])
    armenia = [e for e in proposal["entities"] if "Армения" in e["names"] or "Армении" in e["names"]]
    assert len(armenia) == 1 and "Armenia" in armenia[0]["names"] and "Армени*" in armenia[0]["names"]
    assert checks(toml, tmp_path / "config").startswith("ok:")
    matched = cli(
        "match", "--config-dir", str(tmp_path / "config"), "--text", "Пашиняну и Азербайджану предложили перемирие"
    )
    assert json.loads(matched.stdout)["matches"]


def test_draw_says_what_is_wrong_with_its_input(tmp_path: Path) -> None:
    missing = cli("draw", str(tmp_path / "nothing.txt"))
    assert missing.code == 1 and "nothing.txt: cannot read" in missing.stderr and "Traceback" not in missing.stderr
    farm = FeedFarm()
    farm.routes["/gone"] = Route(b"", status=404)
    config = tmp_path / "config"
    config.mkdir()
    (config / "feeds.toml").write_text("[fetch]\nallow_private_addresses = true\n", encoding="utf-8")
    with running(farm):
        gone = cli("draw", farm.url("/gone"), "--config-dir", str(config))
        refused = cli("draw", farm.url("/gone"))  # without the config's permission, loopback is refused
    assert gone.code == 1 and "404" in gone.stderr
    assert refused.code == 1 and refused.stderr.startswith("error: ")
    bad_name = cli("draw", str(tmp_path / "x.txt"), "--name", "Bad Name")
    assert bad_name.code == 2
