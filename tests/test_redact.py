"""mask_url / redact_text / redact: every form a credential takes in a URL or a message is masked,
and nothing else changes."""

import pytest

from tunelab.redact import mask_url, redact, redact_text, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:hunter22@db:5432/x", "postgresql://bob:***@db:5432/x"),
        ("postgresql+psycopg2://bob:hunter22@db/x", "postgresql+psycopg2://bob:***@db/x"),
        ("mysql://bob:hun%40ter22@db/x", "mysql://bob:***@db/x"),  # percent-encoded "@"
        ("postgresql://bob:hun@ter22@db/x", "postgresql://bob:***@db/x"),  # an "@" left unescaped
        ("postgresql://:hunter22@db/x", "postgresql://:***@db/x"),  # no user name
        ("postgresql://bob@db/x?password=hunter22", "postgresql://bob@db/x?password=***"),
        ("postgresql://bob@db/x?sslmode=require&sslpassword=hunter22", "postgresql://bob@db/x?sslmode=require&sslpassword=***"),
        ("sqlite:////tmp/s.db?password=hunter22", "sqlite:////tmp/s.db?password=***"),
        ("redis://bob:hunter22@h/0", "redis://bob:***@h/0"),
    ],
)  # fmt: skip
def test_mask_url_hides_the_password_and_keeps_the_rest(url, shown):
    assert mask_url(url) == shown
    assert "hunter22" not in mask_url(url) and "ter22" not in mask_url(url)


@pytest.mark.parametrize(
    "url",
    ["sqlite:///runs/studies.db", "sqlite:///:memory:", "postgresql://tunelab@127.0.0.1:5432/postgres"],
)
def test_a_url_without_a_secret_is_shown_unchanged(url):
    assert mask_url(url) == url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "(psycopg2.OperationalError) cannot connect to postgresql://bob:hunter22@db/x: refused",
            "(psycopg2.OperationalError) cannot connect to postgresql://bob:***@db/x: refused",
        ),
        ("url='mysql://u:hunter22@h/db'", "url='mysql://u:***@h/db'"),
        ('{"storage": "postgresql://u:hunter22@h/db"}', '{"storage": "postgresql://u:***@h/db"}'),
        ("dsn: host=db user=bob password=hunter22 port=5432", "dsn: host=db user=bob password=*** port=5432"),
        ("PGPASSWORD='hunter 22' tunelab studies", "PGPASSWORD=*** tunelab studies"),
        ("GET /w.pt?api_key=hunter22&x=1", "GET /w.pt?api_key=***&x=1"),
        ("two: a://u:hunter22@h and b://v:hunter22@k", "two: a://u:***@h and b://v:***@k"),
    ],
)
def test_redact_text_masks_credentials_inside_free_text(text, shown):
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "study mnist1d_search · 20 complete (budget 20) · sqlite:///runs/studies.db",
        "see https://sqlalche.me/e/21/e3q8 and bob@example.com",
        "--set optimizer.lr=0.01 --set methods.l2.weight=1e-4",
        "val.accuracy 0.9000 · epochs=3 · passes=4",
    ],
)
def test_redact_text_leaves_ordinary_messages_alone(text):
    assert redact_text(text) == text


def test_a_known_secret_is_masked_wherever_it_appears_in_any_encoding():
    text = "FATAL: password for 'b@d pw' rejected; tried b%40d%20pw"
    assert redact_text(text, known=["b@d pw"]) == "FATAL: password for '***' rejected; tried ***"
    assert redact_text("a 1 b", known=["1", None, ""]) == "a 1 b"  # too short to search for


def test_url_secrets_lists_the_password_and_secret_query_values():
    url = "postgresql://bob:pw1234@db/x?sslpassword=k5678&sslmode=require"
    assert url_secrets(url) == ["pw1234", "k5678"]
    assert url_secrets("sqlite:///runs/studies.db") == []
    assert url_secrets("not a url") == []


def test_redact_walks_nested_json_and_keeps_other_values():
    obj = {"a": [1, 2.5, None, True, ("x://u:pw5678@h",)], "b": {"c": "token=abcdef"}}
    assert redact(obj) == {"a": [1, 2.5, None, True, ("x://u:***@h",)], "b": {"c": "token=***"}}
