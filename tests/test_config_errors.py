"""Every class of config error names the file, the line and the key, exits 1, and shows no traceback."""

from __future__ import annotations

import re

import pytest

from tests.conftest import MINIMAL_KEYWORDS, WriteConfig, cli, cli_process


def check_errors(directory: object, env: dict[str, str] | None = None) -> list[str]:
    result = cli("check", "--config-dir", str(directory), env=env)
    assert result.code == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines
    return lines


def test_shipped_config_checks_ok() -> None:
    result = cli_process("check")
    assert result.code == 0, result.stderr
    assert re.fullmatch(
        r"ok: \d+ feeds, [1-9]\d* entities, [1-9]\d* term groups, [1-9]\d* rules, 1 channels\n", result.stdout
    )


def test_minimal_config_counts(write_config: WriteConfig) -> None:
    directory = write_config()
    result = cli("check", "--config-dir", str(directory))
    assert result.code == 0, result.stderr
    assert result.stdout == "ok: 0 feeds, 1 entities, 1 term groups, 1 rules, 1 channels\n"


def test_toml_syntax_error_names_line_and_column(write_config: WriteConfig) -> None:
    directory = write_config('schema = 1\n\n[entities.x]\nkind = place\nnames = ["a"]\n')
    (line,) = check_errors(directory)
    assert re.match(r".*keywords\.toml:4:8: invalid TOML: ", line), line


def test_toml_cut_off_points_at_last_line(write_config: WriteConfig) -> None:
    directory = write_config('schema = 1\n\n[entities.x]\nkind = "place"\nnames = ["a", "b"\n')
    (line,) = check_errors(directory)
    assert re.match(r".*keywords\.toml:5: invalid TOML: .*at end of file", line), line


def test_unknown_key_names_line_and_key(write_config: WriteConfig) -> None:
    directory = write_config(MINIMAL_KEYWORDS.replace('priority = "urgent"', 'priority = "urgent"\nsevrity = 3'))
    (line,) = check_errors(directory)
    assert re.match(r".*keywords\.toml:14: unknown key 'rules\[0\]\.sevrity'", line), line


def test_unknown_reference_names_it(write_config: WriteConfig) -> None:
    directory = write_config(MINIMAL_KEYWORDS.replace("@khankendi AND", "@khankendy AND"))
    (line,) = check_errors(directory)
    assert re.match(r".*keywords\.toml:12: .*unknown reference @khankendy", line), line


def test_bad_query_syntax_names_rule_and_column(write_config: WriteConfig) -> None:
    directory = write_config(MINIMAL_KEYWORDS.replace("@khankendi AND (@violence", "@khankendi (@violence"))
    (line,) = check_errors(directory)
    assert re.match(r".*keywords\.toml:12: rules\[0\]\.query \(karabakh-escalation\): column 12: ", line), line
    assert "no operator" in line


def test_duplicate_rule_id(write_config: WriteConfig) -> None:
    extra = '\n[[rules]]\nid = "karabakh-escalation"\nquery = "Stepanakert"\n'
    (line,) = check_errors(write_config(MINIMAL_KEYWORDS + extra))
    assert re.match(r".*keywords\.toml:16: rules\[1\]\.id: duplicate rule id 'karabakh-escalation'", line), line


def test_entity_and_term_sharing_an_id(write_config: WriteConfig) -> None:
    extra = '\n[terms.khankendi]\nwords = ["x"]\n'
    (line,) = check_errors(write_config(MINIMAL_KEYWORDS + extra))
    assert re.match(r".*keywords\.toml:15: terms\.khankendi: id 'khankendi' is also an entity id", line), line


def test_bad_ids_and_values(write_config: WriteConfig) -> None:
    keywords = """\
    schema = 1
    [entities.Khankendi]
    kind = "city"
    names = []
    [[rules]]
    id = "Bad Id"
    query = "x"
    priority = "critical"
    """
    lines = check_errors(write_config(keywords))
    text = "\n".join(lines)
    assert re.search(r"keywords\.toml:2: .*'Khankendi' is not a valid id", text), text
    assert re.search(r"keywords\.toml:3: entities\.Khankendi\.kind: ", text), text
    assert re.search(r"keywords\.toml:4: entities\.Khankendi\.names: ", text), text
    assert re.search(r"keywords\.toml:6: .*'Bad Id' is not a valid id", text), text
    assert re.search(r"keywords\.toml:8: rules\[0\]\.priority: ", text), text


def test_bad_name_in_entity(write_config: WriteConfig) -> None:
    keywords = MINIMAL_KEYWORDS.replace('"Stepanakert",', '"Step*nakert",')
    (line,) = check_errors(write_config(keywords))
    assert re.match(r".*keywords\.toml:5: entities\.khankendi\.names\[1\]: .*'\*' may only end a word", line), line


def test_missing_keywords_file(write_config: WriteConfig) -> None:
    (line,) = check_errors(write_config(keywords=None))
    assert line.endswith("keywords.toml: file not found")


def test_every_problem_reported_at_once(write_config: WriteConfig) -> None:
    keywords = MINIMAL_KEYWORDS.replace("@khankendi AND", "@nowhere AND") + '\n[[rules]]\nid = "b"\nquery = "(x"\n'
    feeds = '[defaults]\ninterval = "0s"\n\n[[feeds]]\nurl = "ftp://example.com/feed"\n'
    lines = check_errors(write_config(keywords, feeds=feeds))
    assert len(lines) == 4, lines
    assert any("keywords.toml:12:" in x and "@nowhere" in x for x in lines)
    assert any("keywords.toml:17:" in x and "never closed" in x for x in lines)
    assert any("feeds.toml:2: defaults.interval" in x for x in lines)
    assert any("feeds.toml:5: feeds[0].url: ftp://" in x for x in lines)


@pytest.mark.parametrize(
    ("feeds", "expected"),
    [
        ('[defaults]\ninterval = "10x"\n', r"feeds\.toml:2: defaults\.interval: '10x' is not a duration"),
        ('[defaults]\ninterval = "10s"\n', r"feeds\.toml:2: defaults\.interval: 10s is outside 30s\.\.1d"),
        ('[[feeds]]\nurl = "https://a.example/rss"\ninterval = "2d"\n', r"feeds\.toml:3: feeds\[0\]\.interval: 2d"),
        ('[fetch]\nmax_bytes = "lots"\n', r"feeds\.toml:2: fetch\.max_bytes: 'lots' is not a size"),
        ("[fetch]\nretries = 3\n", r"feeds\.toml:2: unknown key 'fetch\.retries'"),
        ('[[feeds]]\nurl = "gopher://a.example/"\n', r"feeds\.toml:2: feeds\[0\]\.url: gopher://"),
        ('[[feeds]]\nurl = "data:text/xml,<rss/>"\n', r"feeds\.toml:2: feeds\[0\]\.url: data: URLs are not feeds"),
        (
            '[[feeds]]\nurl = "https://a.example/rss"\n\n[[feeds]]\nurl = "https://a.example/rss"\n',
            r"feeds\.toml:5: feeds\[1\]\.url: the same feed as feeds\[0\]",
        ),
        ('[[feeds]]\nname = "No URL"\n', r"feeds\.toml:1: missing required key 'feeds\[0\]\.url'"),
    ],
    ids=[
        "bad-duration",
        "interval-too-short",
        "feed-interval-too-long",
        "bad-size",
        "unknown-key",
        "gopher-url",
        "data-url",
        "duplicate-feed",
        "missing-url",
    ],
)
def test_feeds_errors(write_config: WriteConfig, feeds: str, expected: str) -> None:
    (line,) = check_errors(write_config(feeds=feeds))
    assert re.match(r".*" + expected, line), line


def test_feed_url_env_reference(write_config: WriteConfig) -> None:
    feeds = '[[feeds]]\nurl = "https://user:${FEED_PASS}@a.example/rss"\n'
    directory = write_config(feeds=feeds)
    (line,) = check_errors(directory)
    assert re.match(r".*feeds\.toml:2: feeds\[0\]\.url: environment variable FEED_PASS is not set", line), line
    ok = cli("check", "--config-dir", str(directory), env={"FEED_PASS": "hunter2"})
    assert ok.code == 0 and "hunter2" not in ok.stdout + ok.stderr


CHANNELS = """\
[channels.desk]
urls = ["json://127.0.0.1:9/hook", "mailto://user:${SMTP_PASS}@example.com"]
mode = "digest"
schedule = "0 8,13,18 * * *"
timezone = "Asia/Baku"
max_per_hour = 20

[channels.urgent]
urls = ["json://127.0.0.1:9/urgent"]
"""


def test_channels_ok_and_secret_never_printed(write_config: WriteConfig) -> None:
    directory = write_config(channels=CHANNELS)
    result = cli("check", "--config-dir", str(directory), env={"SMTP_PASS": "s3cr3t-pw"})
    assert result.code == 0, result.stderr
    assert result.stdout.endswith("2 channels\n")
    assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_missing_env_var_is_named_never_its_value(write_config: WriteConfig) -> None:
    directory = write_config(channels=CHANNELS)
    (line,) = check_errors(directory, env={"SMTP_PASS": None})  # type: ignore[dict-item]
    assert re.match(r".*channels\.toml:2: channels\.desk\.urls\[1\]: environment variable SMTP_PASS is not set", line)


def test_apprise_rejects_url_without_echoing_it(write_config: WriteConfig) -> None:
    channels = '[channels.desk]\nurls = [\n  "json://127.0.0.1:9/ok",\n  "slak://T000/B000/XXXXsecretXXXX",\n]\n'
    (line,) = check_errors(write_config(channels=channels))
    assert re.match(r".*channels\.toml:4: channels\.desk\.urls\[1\]: Apprise cannot use this slak:// URL", line), line
    assert "secret" not in line


URL = '[channels.desk]\nurls = ["json://127.0.0.1:9/x"]\n'


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        (URL + 'mode = "digest"\n', r"channels\.toml:3: channels\.desk: a digest channel needs a schedule"),
        (URL + 'mode = "digest"\nschedule = "0 25 * * *"\n', r"channels\.toml:4: channels\.desk\.schedule: "),
        (URL + 'timezone = "Mars/Olympus"\n', r"channels\.toml:3: channels\.desk\.timezone: unknown time zone"),
        (URL + 'mode = "weekly"\n', r"channels\.toml:3: channels\.desk\.mode: "),
        (URL + 'schedule = "0 8 * * *"\n', r"channels\.toml:3: channels\.desk\.schedule: only a digest channel"),
        ('[channels.desk]\nurl = "json://127.0.0.1:9/x"\n', r"channels\.toml:2: unknown key 'channels\.desk\.url'"),
        ("[channels]\n", r"channels\.toml:1: no channels defined"),
    ],
    ids=[
        "digest-without-schedule",
        "bad-cron",
        "bad-timezone",
        "bad-mode",
        "instant-with-schedule",
        "unknown-key",
        "empty",
    ],
)
def test_channel_errors(write_config: WriteConfig, channels: str, expected: str) -> None:
    lines = check_errors(write_config(channels=channels))
    assert any(re.match(r".*" + expected, line) for line in lines), lines


def test_rule_notifies_unknown_channel(write_config: WriteConfig) -> None:
    keywords = MINIMAL_KEYWORDS.replace('priority = "urgent"', 'priority = "urgent"\nnotify = ["desk", "nightdesk"]')
    (line,) = check_errors(write_config(keywords, channels='[channels.desk]\nurls = ["json://127.0.0.1:9/x"]\n'))
    assert re.match(
        r".*keywords\.toml:14: rules\[0\]\.notify \(karabakh-escalation\): unknown channel 'nightdesk'", line
    )


def test_match_needs_only_keywords(write_config: WriteConfig) -> None:
    """`match` reads keywords.toml alone: a broken channels.toml does not stop it."""
    directory = write_config(channels="this is not toml")
    result = cli("match", "--config-dir", str(directory), "--text", "Shelling in Stepanakert")
    assert result.code == 0, result.stderr
    assert '"rule": "karabakh-escalation"' in result.stdout


def test_real_process_prints_no_traceback(write_config: WriteConfig) -> None:
    directory = write_config(MINIMAL_KEYWORDS.replace("@khankendi AND", "@khankendi AND AND"))
    result = cli_process("check", "--config-dir", str(directory))
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert re.fullmatch(
        r".*keywords\.toml:12: rules\[0\]\.query \(karabakh-escalation\): column 16: .*\n", result.stderr
    )


def test_config_dir_from_environment(write_config: WriteConfig) -> None:
    directory = write_config()
    result = cli("check", env={"MONITOR_CONFIG_DIR": str(directory)})
    assert result.code == 0 and "1 rules" in result.stdout


def test_missing_config_dir_is_a_user_error(tmp_path: object) -> None:
    result = cli("check", "--config-dir", f"{tmp_path}/nope")
    assert result.code == 1
    assert "config directory not found" in result.stderr


@pytest.mark.parametrize(
    ("stories", "message"),
    [
        ('window = "30m"', "keywords.toml:3: stories.window: 30m is outside 1h..30d"),
        ("spread_alert = 1", "keywords.toml:3: stories.spread_alert: Input should be greater than or equal to 2"),
        ("spread = 5", "keywords.toml:3: unknown key 'stories.spread'"),
    ],
)
def test_stories_settings_are_checked(write_config: WriteConfig, stories: str, message: str) -> None:
    schema, rest = MINIMAL_KEYWORDS.split("\n", 1)
    directory = write_config(f"{schema}\n[stories]\n{stories}\n{rest}")
    [line] = check_errors(directory)
    assert message in line, line
