"""Hypothesis strategies for the relay's inputs: valid requests, mutations of them, and hostile
SQS bodies (arbitrary text, non-UTF-8 bytes as SQS could hand them over, oversized and deeply
nested JSON, JSON that is not an object).

Valid requests are built from the field rules of docs/contract.md, not from the model under test,
so the model is checked against the contract rather than against itself.
"""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from kvs_relay.protocol import ID_MAX_LENGTH, PAYLOAD_MAX_LENGTH

ID_ALPHABET = string.ascii_letters + string.digits + "_.-"
KNOWN_FIELDS = frozenset(
    {
        "channelArn",
        "channelName",
        "role",
        "clientId",
        "action",
        "recipientClientId",
        "messagePayload",
        "sdp",
        "iceCandidate",
        "correlationId",
    }
)
SQS_MAX_BODY = 256 * 1024

# Identifiers: 1..256 of [a-zA-Z0-9_.-]; short ones mostly, the longest now and then.
ids = st.one_of(
    st.text(ID_ALPHABET, min_size=1, max_size=24),
    st.text(ID_ALPHABET, min_size=ID_MAX_LENGTH - 2, max_size=ID_MAX_LENGTH),
)

channel_arns = st.builds(
    "arn:{}:kinesisvideo:{}:{}:{}/{}/{}".format,
    st.sampled_from(["aws", "aws-cn", "aws-us-gov"]) | st.text("abc123-", min_size=1, max_size=8),
    st.sampled_from(["us-west-2", "eu-central-1"]) | st.text("az09-", min_size=1, max_size=16),
    st.text(string.digits, min_size=1, max_size=12),
    st.just("channel") | st.text(string.ascii_lowercase, min_size=1, max_size=10),
    ids,
    st.text(string.digits, min_size=1, max_size=13),
)

# Base64 of 1..7680 bytes: 4..10240 characters, the payload's whole range.
payloads = st.one_of(
    st.binary(min_size=1, max_size=256),
    st.binary(min_size=7000, max_size=PAYLOAD_MAX_LENGTH // 4 * 3),
).map(lambda raw: base64.b64encode(raw).decode("ascii"))

# Unicode scalar values (no lone surrogates: JSON text on the queue is UTF-8).
unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


def _sdp(session: int, ip: str, extra: str) -> str:
    return (
        f"v=0\r\no=- {session} 2 IN IP4 {ip}\r\ns=-\r\nt=0 0\r\n"
        f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 {ip}\r\na=mid:0\r\n{extra}"
    )


ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda parts: ".".join(map(str, parts)))

# Raw SDP that always fits the 10240-character encoded payload (checked by a boundary test).
sdps = st.one_of(
    st.builds(_sdp, st.integers(0, 2**63), ipv4, st.text(string.printable, max_size=300)),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300),
)

candidate_lines = st.builds(
    "candidate:{} 1 {} {} {} {} typ {}".format,
    st.integers(0, 2**32),
    st.sampled_from(["udp", "tcp"]),
    st.integers(0, 2**31),
    ipv4,
    st.integers(1, 65535),
    st.sampled_from(["host", "srflx", "relay"]),
)

ice_candidates = st.fixed_dictionaries(
    {"candidate": candidate_lines | unicode_text},
    optional={
        "sdpMid": st.none() | unicode_text,
        "sdpMLineIndex": st.none() | st.integers(0, 2**40),
        "usernameFragment": st.none() | unicode_text,
    },
)


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request body every rule of the contract accepts."""
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["channelArn"] = draw(channel_arns)
    else:
        body["channelName"] = draw(ids)
    role = draw(st.sampled_from(["MASTER", "VIEWER"]))
    body["role"] = role
    if role == "MASTER":
        body["recipientClientId"] = draw(ids)
    else:
        body["clientId"] = draw(ids)
        if draw(st.booleans()):
            body["recipientClientId"] = draw(ids)  # ignored for a viewer, still valid
    form = draw(st.sampled_from(["messagePayload", "sdp", "iceCandidate"]))
    if form == "messagePayload":
        body["action"] = draw(st.sampled_from(["SDP_OFFER", "SDP_ANSWER", "ICE_CANDIDATE"]))
        body["messagePayload"] = draw(payloads)
    elif form == "sdp":
        body["action"] = draw(st.sampled_from(["SDP_OFFER", "SDP_ANSWER"]))
        body["sdp"] = draw(sdps)
    else:
        body["action"] = "ICE_CANDIDATE"
        body["iceCandidate"] = draw(ice_candidates)
    if draw(st.booleans()):
        body["correlationId"] = draw(ids)
    return body


# Values that break the id rule: empty, too long, or a character outside [a-zA-Z0-9_.-].
bad_ids = st.one_of(
    st.just(""),
    st.text(ID_ALPHABET, min_size=ID_MAX_LENGTH + 1, max_size=ID_MAX_LENGTH + 40),
    st.tuples(
        st.text(ID_ALPHABET, max_size=10),
        st.characters().filter(lambda ch: ch not in ID_ALPHABET),
        st.text(ID_ALPHABET, max_size=10),
    ).map("".join),
)
not_strings = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2)
)
not_base64 = st.one_of(
    st.just(""),
    st.text(string.ascii_letters, min_size=1, max_size=3),  # not a multiple of 4 characters
    st.text(min_size=1, max_size=20).map(lambda text: "QUJD" + text + "!"),
    st.just("A" * (PAYLOAD_MAX_LENGTH + 4)),  # too long
)


@dataclass(frozen=True)
class Mutation:
    """A valid request broken in one way, and the field the refusal must name."""

    body: dict[str, Any]
    field: str
    how: str


@st.composite
def mutated_requests(draw: st.DrawFn) -> Mutation:
    """A valid request with exactly one rule broken (every choice below is always invalid)."""
    body = draw(valid_requests())
    how = draw(
        st.sampled_from(
            [
                "drop-role",
                "drop-action",
                "bad-role",
                "bad-action",
                "unknown-field",
                "bad-id",
                "id-not-a-string",
                "bad-channel-arn",
                "both-channels",
                "bad-payload",
                "payload-not-a-string",
                "two-payload-forms",
                "master-without-recipient",
                "master-with-client-id",
                "viewer-without-client-id",
                "sdp-for-ice",
                "ice-for-sdp",
                "sdp-too-long",
                "ice-without-candidate",
                "ice-negative-index",
                "ice-not-an-object",
            ]
        )
    )
    field = how
    if how in ("drop-role", "drop-action"):
        field = how.removeprefix("drop-")
        del body[field]
    elif how in ("bad-role", "bad-action"):
        field = how.removeprefix("bad-")
        body[field] = draw(
            st.one_of(unicode_text.filter(lambda t: t not in _ENUM_VALUES), not_strings)
        )
    elif how == "unknown-field":
        field = draw(
            st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40).filter(
                lambda name: name not in KNOWN_FIELDS
            )
        )
        body[field] = draw(st.one_of(unicode_text, not_strings, st.none()))
    elif how in ("bad-id", "id-not-a-string"):
        field = draw(st.sampled_from(["clientId", "recipientClientId", "correlationId"]))
        body[field] = draw(bad_ids if how == "bad-id" else not_strings)
    elif how == "bad-channel-arn":
        field = "channelArn"
        body.pop("channelName", None)
        body[field] = draw(
            st.one_of(unicode_text, channel_arns.map(lambda arn: arn.replace(":", "/", 1)))
        )
    elif how == "both-channels":
        field = "channelArn"
        body["channelArn"] = draw(channel_arns)
        body["channelName"] = draw(ids)
    elif how in ("bad-payload", "payload-not-a-string"):
        field = "messagePayload"
        body[field] = draw(not_base64 if how == "bad-payload" else not_strings)
    elif how == "two-payload-forms":
        field = "messagePayload"
        extra = draw(st.sampled_from(["messagePayload", "sdp"]).filter(lambda f: f not in body))
        body[extra] = draw(payloads if extra == "messagePayload" else sdps)
    elif how == "master-without-recipient":
        field = "recipientClientId"
        body.update(role="MASTER")
        body.pop("clientId", None)
        body.pop("recipientClientId", None)
    elif how == "master-with-client-id":
        field = "clientId"
        body.update(role="MASTER", clientId=draw(ids), recipientClientId=draw(ids))
    elif how == "viewer-without-client-id":
        field = "clientId"
        body["role"] = "VIEWER"
        body.pop("clientId", None)
    elif how == "sdp-for-ice":
        field = "sdp"
        _only_payload(body, "sdp", draw(sdps))
        body["action"] = "ICE_CANDIDATE"
    elif how == "ice-for-sdp":
        field = "iceCandidate"
        _only_payload(body, "iceCandidate", draw(ice_candidates))
        body["action"] = draw(st.sampled_from(["SDP_OFFER", "SDP_ANSWER"]))
    elif how == "sdp-too-long":
        field = "sdp"
        # 7680 bytes of JSON is exactly 10240 base64 characters; this is always more.
        _only_payload(body, "sdp", "v=0 " + "x" * draw(st.integers(7660, 9000)))
        body["action"] = draw(st.sampled_from(["SDP_OFFER", "SDP_ANSWER"]))
    elif how in ("ice-without-candidate", "ice-negative-index"):
        candidate = dict(draw(ice_candidates))
        if how == "ice-without-candidate":
            field = "iceCandidate.candidate"
            del candidate["candidate"]
        else:
            field = "iceCandidate.sdpMLineIndex"
            candidate["sdpMLineIndex"] = draw(st.integers(max_value=-1))
        _only_payload(body, "iceCandidate", candidate)
        body["action"] = "ICE_CANDIDATE"
    elif how == "ice-not-an-object":
        field = "iceCandidate"
        _only_payload(body, "iceCandidate", draw(st.one_of(unicode_text, not_strings)))
        body["action"] = "ICE_CANDIDATE"
    return Mutation(body=body, field=field, how=how)


_ENUM_VALUES = frozenset({"MASTER", "VIEWER", "SDP_OFFER", "SDP_ANSWER", "ICE_CANDIDATE"})


def _only_payload(body: dict[str, Any], form: str, value: Any) -> None:
    for name in ("messagePayload", "sdp", "iceCandidate"):
        body.pop(name, None)
    body[form] = value


def _repeat_to(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


# Arbitrary text, lone surrogates and NUL included.
any_text = st.text(
    st.one_of(
        st.characters(),
        st.characters(categories=["Cs"]),
        st.sampled_from(["\x00", "{", "}", '"', "[", "]", ":", ","]),
    ),
    max_size=400,
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    unicode_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(unicode_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def _nested(depth: int, kind: str, closed: bool) -> str:
    opener, closer = {"array": ("[", "]"), "object": ('{"a":', "}")}[kind]
    inner = "1" if kind == "object" else ""
    return opener * depth + inner + (closer * depth if closed else "")


deep_json = st.builds(
    _nested,
    st.integers(1, 120_000),
    st.sampled_from(["array", "object"]),
    st.booleans(),
)

oversized_text = st.builds(
    _repeat_to,
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=16),
    st.integers(SQS_MAX_BODY + 1, SQS_MAX_BODY + 60_000),
)


@st.composite
def oversized_requests(draw: st.DrawFn) -> str:
    """A valid-looking request with one string field inflated past 256 KiB."""
    body = draw(valid_requests())
    field = draw(st.sampled_from(["sdp", "messagePayload", "clientId", "channelName", "note"]))
    body[field] = _repeat_to(draw(st.sampled_from(["A", "x", "é", "\u2603"])), SQS_MAX_BODY + 1)
    return json.dumps(body)


def _decode(raw: bytes, how: str) -> str:
    return raw.decode("utf-8", errors=how) if how != "latin-1" else raw.decode("latin-1")


# Bytes as a queue consumer could end up with them as a str.
decoded_bytes = st.builds(
    _decode, st.binary(max_size=400), st.sampled_from(["surrogateescape", "replace", "latin-1"])
)

# JSON objects with arbitrary members, and a few close to the contract's shape.
json_objects = st.one_of(
    st.dictionaries(unicode_text, json_values, max_size=6),
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(sorted(KNOWN_FIELDS), json_values),
    ),
).map(json.dumps)

json_non_objects = json_values.filter(lambda value: not isinstance(value, dict)).map(json.dumps)

# Many unknown fields, or one enormous unknown name: the refusal must stay publishable.
many_unknown_fields = st.builds(
    lambda count, width: json.dumps({f"k{n:0{width}d}": 1 for n in range(count)}),
    st.integers(1, 20_000),
    st.integers(1, 6),
)
huge_unknown_field = st.builds(
    lambda size: json.dumps({"x" * size: 1}), st.integers(300, SQS_MAX_BODY - 20)
)

hostile_bodies = st.one_of(
    any_text,
    decoded_bytes,
    json_objects,
    json_non_objects,
    mutated_requests().map(lambda m: json.dumps(m.body)),
    deep_json,
    oversized_text,
    oversized_requests(),
    many_unknown_fields,
    huge_unknown_field,
)
