"""Channel names: a strict grammar of kind, colon and a
positive id, bare or prefixed, always named back canonically."""
import re

import pytest

from realtime.channel_names import MAX_CHANNEL_LENGTH, Channel, parse_channel


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("room:7", Channel("room", 7)),
        ("room:room_7", Channel("room", 7)),
        ("conversation:3", Channel("conversation", 3)),
        ("conversation:conv_3", Channel("conversation", 3)),
        ("user:12", Channel("user", 12)),
        ("user:user_12", Channel("user", 12)),
        ("room:1", Channel("room", 1)),
        ("room:999999999999999999", Channel("room", 999_999_999_999_999_999)),  # 18 digits: fits a bigint
    ],
)
def test_well_formed_names_parse(name, expected):
    assert parse_channel(name) == expected


@pytest.mark.parametrize("name", ["room:7", "room:room_7"])
def test_bare_and_prefixed_forms_name_the_same_channel_canonically(name):
    channel = parse_channel(name)
    assert channel == Channel("room", 7)
    assert str(channel) == "room:7"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("conversation:conv_3", "conversation:3"), ("user:user_12", "user:12"), ("room:10", "room:10")],
)
def test_str_is_the_canonical_name(name, canonical):
    assert str(parse_channel(name)) == canonical
    assert parse_channel(canonical) == parse_channel(name)


@pytest.mark.parametrize(
    "name",
    [
        "room:",
        "room:0",
        "room:-1",
        "room:+1",
        "room:abc",
        "room:1e3",
        "room:1.0",
        "room:0x7",
        "room:1_000",
        "room:１",  # full-width digit one
        "room:١",  # Arabic-Indic digit one
        "room:1:2",
        "room:1\n",
        "room:1 ",
        " room:1",
        "room: 1",
        "room:007",
        "room:room_007",
        "room:room_0",
        "room:room_",
        "room:user_7",  # another kind's prefix
        "room_7",
        "room",
        ":7",
        "",
        "Room:7",
        "ROOM:7",
        "lobby:1",
        "rooms:1",
        "room:9223372036854775808",  # past a signed 64-bit key
        "room:1" + "0" * 95,  # 101 characters
        "room:room_" + "1" * 91,  # 101 characters
    ],
)
def test_malformed_names_are_rejected(name):
    assert parse_channel(name) is None


def test_names_longer_than_the_limit_are_rejected_before_parsing():
    assert MAX_CHANNEL_LENGTH == 100
    assert len("room:1" + "0" * 95) == 101
    assert parse_channel("room:1" + "0" * 95) is None
    assert parse_channel("x" * 10_000) is None


@pytest.mark.parametrize("name", [None, 7, 7.0, True, b"room:7", ["room:7"], ("room", 7), {"room": 7}, Channel("room", 7)])
def test_non_strings_are_rejected(name):
    assert parse_channel(name) is None


@pytest.mark.parametrize("name", ["room:9", "conversation:conv_9", "user:9"])
def test_a_channels_group_is_a_valid_channel_layer_group_name(name):
    assert re.fullmatch(r"[a-zA-Z0-9._-]{1,99}", parse_channel(name).group)


def test_each_channel_has_its_own_group():
    groups = {parse_channel(name).group for name in ("room:9", "room:10", "conversation:9", "user:9")}
    assert len(groups) == 4


@pytest.mark.parametrize(
    ("name", "event_type", "category"),
    [
        ("room:1", "message:new", "message"),
        ("room:1", "message:deleted", "message"),
        ("room:1", "room:updated", "room"),
        ("room:1", "room:deleted", "room"),
        ("conversation:1", "message:updated", "message"),
        ("user:1", "user:online", "activity"),
        ("user:1", "user:updated", "activity"),
        ("user:1", "room:created", "room"),
        ("user:1", "room:deleted", "room"),
    ],
)
def test_each_event_type_belongs_to_one_category_of_its_channel_kind(name, event_type, category):
    assert parse_channel(name).category_of(event_type) == category


@pytest.mark.parametrize(
    ("name", "event_type"),
    [("conversation:1", "room:updated"), ("user:1", "message:new"), ("conversation:1", "user:online"), ("room:1", "room:created")],
)
def test_event_types_of_other_channel_kinds_do_not_apply(name, event_type):
    with pytest.raises(ValueError):
        parse_channel(name).category_of(event_type)


def test_the_largest_64_bit_id_is_a_channel_and_one_more_is_not():
    assert parse_channel("room:9223372036854775807") == Channel("room", 9223372036854775807)
    assert parse_channel("room:9223372036854775808") is None
    assert parse_channel("room:10000000000000000000") is None


def test_each_domain_app_registers_its_channel_kinds():
    from realtime.channel_names import kinds
    from rooms.channels import ConversationChannels, RoomChannels
    from users.channels import UserChannels

    assert {type(kind) for kind in kinds()} == {RoomChannels, ConversationChannels, UserChannels}
    assert {kind.name: kind.id_prefix for kind in kinds()} == {"room": "room", "conversation": "conv", "user": "user"}


def test_star_leaves_out_a_kinds_opt_in_categories():
    assert parse_channel("room:1").star_categories == {"message", "room"}
    assert parse_channel("user:1").star_categories == {"activity", "room"}
