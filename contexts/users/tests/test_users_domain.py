"""The user account's rules, without any store: value objects, the aggregate, password policy."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shop_users.domain.model import (
    AccountErased,
    Deactivated,
    DisplayName,
    EmailAddress,
    Erased,
    InvalidField,
    ProfileChanged,
    Registered,
    Role,
    User,
)
from shop_users.domain.passwords import PasswordPolicy

local_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}[A-Za-z0-9]", fullmatch=True)
domains = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}[A-Za-z0-9]\.[A-Za-z]{2,6}", fullmatch=True)


@given(local_parts, domains)
def test_an_email_is_one_address_however_it_is_spelt(local: str, domain: str) -> None:
    if ".." in local:
        return
    address = f"{local}@{domain}"
    parsed = EmailAddress.parse(f"  {address.upper()} ")
    assert parsed == EmailAddress.parse(address.lower())
    assert parsed.value == parsed.value.lower()
    assert EmailAddress.parse(parsed.value) == parsed  # normalising twice changes nothing


@pytest.mark.parametrize(
    "raw", ["", "plain", "a@", "@b.com", "a b@c.com", "a@b", "x" * 250 + "@b.com"]
)
def test_a_malformed_email_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidField) as refused:
        EmailAddress.parse(raw)
    assert refused.value.details["errors"][0]["field"] == "email"  # type: ignore[index]


@given(st.text(min_size=1, max_size=100).filter(lambda s: s.strip() == s and s != ""))
def test_a_display_name_is_kept_trimmed(name: str) -> None:
    if any(unicodedata.category(c) == "Cc" for c in name):
        return
    assert DisplayName.parse(f"  {name}\t") == DisplayName.parse(name)


@pytest.mark.parametrize("raw", ["", "   ", "x" * 101, "bad\x00name"])
def test_a_display_name_out_of_bounds_is_refused(raw: str) -> None:
    with pytest.raises(InvalidField):
        DisplayName.parse(raw)


POLICY = PasswordPolicy(frozenset({"password", "letmein123"}))


@given(st.text(min_size=8, max_size=128).filter(lambda s: "\x00" not in s))
def test_any_long_enough_uncommon_password_is_accepted(password: str) -> None:
    if password.lower() in POLICY.common:
        return
    POLICY.check(password)


@given(st.text(max_size=7) | st.text(min_size=129, max_size=300))
def test_a_password_outside_8_to_128_characters_is_refused(password: str) -> None:
    with pytest.raises(InvalidField):
        POLICY.check(password)


def test_a_common_password_is_refused_whatever_its_case() -> None:
    with pytest.raises(InvalidField, match="too common"):
        POLICY.check("LetMeIn123")


def new_user() -> User:
    return User.register(EmailAddress.parse("ada@example.com"), DisplayName.parse("Ada"), "hash")


def test_registering_records_the_fact() -> None:
    user = new_user()
    assert [type(e) for e in user.pull_events()] == [Registered]
    assert user.role is Role.CUSTOMER
    assert user.is_active


def test_an_unchanged_profile_records_nothing() -> None:
    user = new_user()
    user.pull_events()
    user.change_profile(name=DisplayName.parse("Ada"), email=None)
    assert user.pull_events() == []
    user.change_profile(name=DisplayName.parse("Ada L."), email=None)
    assert [type(e) for e in user.pull_events()] == [ProfileChanged]


def test_deactivation_and_password_change_end_issued_tokens() -> None:
    user = new_user()
    generation = user.token_generation
    user.deactivate()
    assert user.token_generation == generation + 1
    assert not user.can_sign_in
    assert [type(e) for e in user.pull_events()][-1] is Deactivated
    user.reactivate()
    user.change_password("new-hash")
    assert user.token_generation == generation + 2


def test_erasure_drops_personal_data_and_keeps_the_id() -> None:
    user = new_user()
    user_id = user.id
    user.erase()
    assert (user.id, user.email, user.name, user.password_hash) == (user_id, None, None, None)
    assert not user.can_sign_in
    assert user.is_erased
    assert [type(e) for e in user.pull_events()][-1] is Erased
    with pytest.raises(AccountErased):
        user.change_profile(name=DisplayName.parse("Back"), email=None)
