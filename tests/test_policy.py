"""The data policy for data_in/data_out: keep, drop, redact; its configuration and its errors."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import pickle
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.zap_runs.common.errors import ConfigError
from pipelines.zap_runs.reading.policy import DataPolicy

SALT = "pepper-7f3a9c1e-never-shown"
KEYS = ["email", "phone", "password"]


def redact(**overrides: object) -> DataPolicy:
    config = {"data_in": "redact", "data_out": "redact", "redact_keys": KEYS} | overrides
    return DataPolicy.from_config(config)


def sha256_of(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# keep and drop

def test_keep_is_the_default_and_returns_the_text_itself():
    policy = DataPolicy.from_config(None)
    assert policy == DataPolicy() and policy.is_keep
    text = '{"email": "ada@example.com",  "n": 1.10}'
    assert policy.apply("data_in", text) is text
    assert policy.apply("data_out", None) is None
    row = {"data_in": text, "data_out": "null"}
    assert policy.apply_row(row) is row and row == {"data_in": text, "data_out": "null"}


def test_drop_stores_null_whatever_was_sent():
    policy = DataPolicy.from_config({"data_in": "drop"})
    assert not policy.is_keep
    for text in ('{"a": 1}', "null", '""', "not json", None):
        assert policy.apply("data_in", text) is None
    row = {"id": "r1", "data_in": '{"email": "x"}', "data_out": '{"email": "y"}'}
    assert policy.apply_row(row) == {"id": "r1", "data_in": None, "data_out": '{"email": "y"}'}


def test_apply_names_the_fields_it_knows():
    with pytest.raises(ValueError, match="data_in or data_out"):
        DataPolicy().apply("zap_title", "x")


# redact

def test_redact_replaces_values_of_the_keys_at_any_depth_and_in_lists_ignoring_case():
    policy = redact(redact_with="null")
    text = json.dumps({
        "EMAIL": "ada@example.com", "name": "Ada",
        "contacts": [{"Phone": "+1 555 0100", "kind": "work"}, [{"password": "hunter2"}], 7],
        "deep": {"a": {"b": {"eMail": {"nested": "object value"}}}},
        "emails": "not a key in the list", "note": "email",
    })
    assert json.loads(policy.apply("data_out", text)) == {
        "EMAIL": None, "name": "Ada",
        "contacts": [{"Phone": None, "kind": "work"}, [{"password": None}], 7],
        "deep": {"a": {"b": {"eMail": None}}},
        "emails": "not a key in the list", "note": "email",
    }


def test_redact_returns_compact_json_and_keeps_every_other_value_exact():
    policy = redact()
    text = '{"email": "a@b.c", "f": 0.1, "n": -0, "s": "\u00e9\u6f22 \\"q\\""}'
    assert policy.apply("data_in", text) == (
        '{"email":"' + policy.hash_value("a@b.c") + '","f":0.1,"n":0,"s":"\u00e9\u6f22 \\"q\\""}')
    # Integers beyond 64 bits keep every digit (written by the standard writer, ASCII-escaped).
    text = '{"phone": 1, "big": 123456789012345678901234567890, "s": "\u00e9"}'
    out = policy.apply("data_in", text)
    assert "123456789012345678901234567890" in out
    assert json.loads(out) == {"phone": policy.hash_value(1), "big": 123456789012345678901234567890,
                               "s": "\u00e9"}


def test_redact_leaves_text_without_a_matching_key_as_sent():
    policy = redact()
    for text in ('{"name": "Ada",  "n": 1.10}', "null", '"ada@example.com"', "[1, 2]", "{}"):
        assert policy.apply("data_in", text) is text
    assert policy.apply("data_in", None) is None, "absent stays absent"


def test_redact_keys_in_config_match_whatever_their_case():
    policy = DataPolicy.from_config({"data_out": "redact", "redact_keys": ["E-Mail"]})
    assert policy.redact_keys == frozenset({"e-mail"})
    assert "x@y" not in policy.apply("data_out", '{"e-MAIL": "x@y"}')


def test_the_hash_is_of_the_canonical_json_so_equal_values_hash_alike():
    policy = redact()
    first = json.loads(policy.apply("data_in", '{"email": {"b": 1, "a": [true, null]}, "x": 1}'))
    second = json.loads(policy.apply("data_out", '[{"Email": {"a": [true, null], "b": 1}}]'))
    assert first["email"] == second[0]["Email"] == sha256_of({"a": [True, None], "b": 1})
    assert policy.hash_value("ada@example.com") == sha256_of("ada@example.com")
    assert policy.hash_value(1) != policy.hash_value("1") != policy.hash_value(None)


def test_a_salt_keys_the_hash_and_another_salt_gives_another_hash():
    plain, salted, other = redact(), redact(redact_salt=SALT), redact(redact_salt=SALT + "2")
    value = "ada@example.com"
    expected = hmac.new(SALT.encode(), b'"ada@example.com"', hashlib.sha256).hexdigest()
    assert salted.hash_value(value) == "hmac-sha256:" + expected
    assert redact(redact_salt=SALT).hash_value(value) == salted.hash_value(value), "stable"
    assert salted.hash_value(value) == salted.hash_value(value), "a hash leaves the key as it was"
    long_salt = "k" * 100  # longer than SHA-256's block: HMAC hashes the key first
    assert redact(redact_salt=long_salt).hash_value([1]) == "hmac-sha256:" + hmac.new(
        long_salt.encode(), b"[1]", hashlib.sha256).hexdigest()
    assert len({plain.hash_value(value), salted.hash_value(value), other.hash_value(value)}) == 3


def test_redact_with_null_stores_json_null():
    policy = redact(redact_with="null")
    assert policy.apply("data_in", '{"password": "hunter2", "ok": true}') == '{"password":null,"ok":true}'


@pytest.mark.parametrize("text", [
    '{"email": "ada@example.com"', "{'email': 'ada@example.com'}", '{"email": NaN}',
    '{"email": "ada@example.com"} trailing', "", "ada@example.com",
    "[" * 5000 + '{"email": "ada@example.com"}' + "]" * 5000,
])
def test_text_that_is_not_json_is_never_stored_under_redact(text, caplog):
    policy = redact()
    assert policy.apply("data_out", text) is None
    assert policy.apply("data_out", text) is None
    assert policy.invalid_counts == {"data_in": 0, "data_out": 2}
    assert "ada@example.com" not in caplog.text, "the log never shows the payload"


def test_deep_but_readable_json_is_redacted():
    text = "[" * 900 + '{"email": "ada@example.com"}' + "]" * 900
    out = redact(redact_with="null").apply("data_in", text)
    assert out == "[" * 900 + '{"email":null}' + "]" * 900


def test_apply_row_redacts_each_field_by_its_own_mode():
    policy = DataPolicy.from_config({"data_in": "keep", "data_out": "redact", "redact_keys": ["email"]})
    data_in = '{"email": "in@example.com"}'
    row = policy.apply_row({"data_in": data_in, "data_out": '{"email": "out@example.com"}'})
    assert row["data_in"] is data_in
    assert row["data_out"] == '{"email":"' + policy.hash_value("out@example.com") + '"}'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "Email", "PHONE", "b", "password", "x"]) | st.text(max_size=4),
                      children, max_size=4),
    max_leaves=30,
)


def _plant(value: object, counter: list[int]) -> object:
    """`value` with a unique secret string under each key the policy redacts."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key.lower() in KEYS:
                counter[0] += 1
                out[key] = {"v": [f"SECRET-{counter[0]}-TERCES"]}
            else:
                out[key] = _plant(item, counter)
        return out
    if isinstance(value, list):
        return [_plant(item, counter) for item in value]
    return value


def _expected(value: object) -> object:
    if isinstance(value, dict):
        return {key: None if key.lower() in KEYS else _expected(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expected(item) for item in value]
    return value


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["hash", "null"]))
def test_no_redacted_value_survives_and_nothing_else_changes(value, redact_with):
    planted = _plant(value, [0])
    policy = redact(redact_with=redact_with, redact_salt=SALT)
    out = policy.apply("data_in", json.dumps(planted))
    assert "SECRET-" not in out
    stored = json.loads(out)
    if redact_with == "null":
        assert stored == _expected(planted)
    else:
        assert _expected(stored) == _expected(planted)


# configuration

@pytest.mark.parametrize("config, field", [
    ({"data_in": "redakt"}, "data_in"),
    ({"data_out": 1}, "data_out"),
    ({"data_out": "redact", "redact_keys": ["email"], "redact_with": "blank"}, "redact_with"),
    ({"data_out": "redact"}, "redact_keys"),
    ({"data_out": "redact", "redact_keys": []}, "redact_keys"),
    ({"data_out": "redact", "redact_keys": "email, phone"}, "redact_keys"),
    ({"data_out": "redact", "redact_keys": ["email", 3]}, "redact_keys"),
    ({"data_out": "redact", "redact_keys": ["email", " "]}, "redact_keys"),
    ({"data_out": "redact", "redact_keys": ["email"], "redact_salt": ""}, "redact_salt"),
    ({"data_out": "redact", "redact_keys": ["email"], "redact_salt": 42}, "redact_salt"),
    ({"data_out": "drop", "redact_key": ["email"]}, "redact_key"),
])
def test_a_bad_value_is_one_line_naming_where_and_the_field_never_the_salt(config, field):
    where = "[sources.zap_runs.accounts.acme.data_policy]"
    with pytest.raises(ConfigError) as raised:
        DataPolicy.from_config(config | {"redact_salt": SALT} if "redact_salt" not in config
                               else config, where=where)
    message = str(raised.value)
    assert "\n" not in message and where in message and field in message
    assert SALT not in message


def test_a_policy_that_is_not_a_table_is_refused():
    with pytest.raises(ConfigError, match=r"^\[sources.zap_runs.data_policy\] must be a table"):
        DataPolicy.from_config("drop")


def test_the_salt_never_shows_in_repr_or_str():
    policy = redact(redact_salt=SALT)
    assert policy.salt == SALT.encode()
    assert SALT not in repr(policy) and SALT not in str(policy)


def test_a_policy_copies_and_pickles_with_its_salt():
    policy = redact(redact_salt=SALT)
    for twin in (copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        assert twin == policy and twin.hash_value("x") == policy.hash_value("x")


def test_modes_are_read_whatever_their_case():
    policy = DataPolicy.from_config({"data_in": " Drop ", "data_out": "KEEP"})
    assert (policy.data_in, policy.data_out) == ("drop", "keep")


def test_an_account_overrides_only_the_fields_it_gives():
    base = DataPolicy.from_config({"data_out": "redact", "redact_keys": ["email", "phone"],
                                   "redact_with": "hash", "redact_salt": SALT})
    acme = DataPolicy.from_config({"data_out": "drop"}, base=base)
    assert (acme.data_in, acme.data_out) == ("keep", "drop")
    assert acme.redact_keys == base.redact_keys and acme.salt == base.salt
    beta = DataPolicy.from_config({"data_in": "redact", "redact_keys": ["SSN"]}, base=base)
    assert (beta.data_in, beta.data_out, beta.redact_keys) == ("redact", "redact", frozenset({"ssn"}))
    assert DataPolicy.from_config(None, base=base) is base
    assert DataPolicy.from_config({}, base=base) == base


def test_an_account_that_turns_on_redact_needs_keys_from_somewhere():
    with pytest.raises(ConfigError, match=r"data_in = \"redact\" under \[accounts.x\] needs redact_keys"):
        DataPolicy.from_config({"data_in": "redact"}, base=DataPolicy(), where="[accounts.x]")
    assert DataPolicy.from_config({"data_in": "redact"}, base=redact()).data_in == "redact"


def test_config_table_merges_config_toml_secrets_toml_and_the_environment(tmp_path):
    """In a process of its own, as dlt reads .dlt/ of the folder it starts in. Asking dlt for the
    table alone would give only secrets.toml's (the salt) and lose the modes in config.toml."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        '[sources.zap_runs.data_policy]\ndata_in = "keep"\ndata_out = "redact"\n'
        'redact_keys = ["email", "phone"]\n\n'
        '[sources.zap_runs.accounts.acme.data_policy]\ndata_out = "drop"\n')
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        f'[sources.zap_runs.data_policy]\nredact_salt = "{SALT}"\n')
    code = (
        "import json\n"
        "from pipelines.zap_runs.reading.policy import DataPolicy, config_table\n"
        "base = DataPolicy.from_config(config_table())\n"
        "acme_table = config_table('sources.zap_runs.accounts.acme.data_policy')\n"
        "acme = DataPolicy.from_config(acme_table, base=base)\n"
        "print(json.dumps([base.data_in, base.data_out, sorted(base.redact_keys), base.salt is not None,"
        " acme.data_out, base.hash_value('x')]))\n"
    )
    env_var = "SOURCES__ZAP_RUNS__DATA_POLICY__DATA_IN"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, env_var: "drop"})
    assert done.returncode == 0, done.stderr
    data_in, data_out, keys, salted, acme_out, digest = json.loads(done.stdout)
    assert (data_in, data_out, keys, salted, acme_out) == ("drop", "redact", ["email", "phone"], True, "drop")
    assert digest == redact(redact_salt=SALT).hash_value("x")
