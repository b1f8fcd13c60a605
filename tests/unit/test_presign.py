"""presign_connect_url reproduces the official JS SDK's presigned URLs byte for byte."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.credentials import ReadOnlyCredentials

from kvs_relay.presign import presign_connect_url
from tests.conftest import load_presign_vectors


@pytest.mark.parametrize("vector", load_presign_vectors(), ids=lambda v: v["name"])
def test_reproduces_js_sdk_vector(vector: dict[str, Any]) -> None:
    credentials = ReadOnlyCredentials(
        vector["accessKeyId"], vector["secretAccessKey"], vector["sessionToken"]
    )
    url = presign_connect_url(
        vector["endpoint"],
        vector["query"]["X-Amz-ChannelARN"],
        vector["query"].get("X-Amz-ClientId"),
        credentials,
        vector["region"],
        expires=vector["expiresSeconds"],
        signed_at=dt.datetime.fromisoformat(vector["signedAt"].replace("Z", "+00:00")),
    )
    assert url == vector["url"]


def test_master_url_has_no_client_id_and_signs_the_token() -> None:
    credentials = ReadOnlyCredentials("ASIAEXAMPLE", "secret", "token/with+chars=")
    url = presign_connect_url(
        "wss://m-1.kinesisvideo.us-east-1.amazonaws.com",
        "arn:aws:kinesisvideo:us-east-1:123456789012:channel/c/1",
        None,
        credentials,
        "us-east-1",
    )
    query = parse_qs(urlsplit(url).query)
    assert "X-Amz-ClientId" not in query
    assert query["X-Amz-Security-Token"] == ["token/with+chars="]
    assert query["X-Amz-Expires"] == ["299"]
    assert query["X-Amz-SignedHeaders"] == ["host"]
    assert query["X-Amz-Credential"][0].endswith("/us-east-1/kinesisvideo/aws4_request")
