"""What the benchmark sends: signaling requests (the relay's contract) and SQS events of them.

Every request names its channel by ARN and is sent as MASTER; payloads are realistic in size (an
SDP answer of about 1.4 KB, an ICE candidate of about 100 bytes), unique per message.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

SDP_ANSWER_TEMPLATE = (
    "v=0\r\no=- {session} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "a=msid-semantic: WMS\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
    "a=ice-options:trickle\r\na=fingerprint:sha-256 4B:1A:9C:7E:22:0F:8D:61:3A:C5:90:E4:17:BB:"
    "58:0C:6D:F2:A9:33:84:1E:C7:5B:02:9F:E0:46:BD:71:28:D3\r\na=setup:active\r\na=mid:0\r\n"
    "a=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 H264/90000\r\n"
    "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=fmtp:96 level-asymmetry-allowed=1;"
    "packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 4B:1A:9C:7E:22:0F:8D:61:3A:C5:90:E4:17:BB:58:0C:6D:F2:A9:33:84:1E:"
    "C7:5B:02:9F:E0:46:BD:71:28:D3\r\na=setup:active\r\na=mid:1\r\na=sctp-port:5000\r\n"
    "a=max-message-size:262144\r\n"
)


def sdp_answer(channel_arn: str, recipient: str, tag: str) -> dict[str, Any]:
    """An SDP answer from the channel's MASTER to viewer ``recipient``."""
    unique = uuid.uuid4().hex
    sdp = SDP_ANSWER_TEMPLATE.format(
        session=int(unique[:15], 16), ufrag=unique[:4], pwd=unique[4:28]
    )
    return {
        "channelArn": channel_arn,
        "role": "MASTER",
        "recipientClientId": recipient,
        "action": "SDP_ANSWER",
        "sdp": sdp,
        "correlationId": f"{tag}-answer-{unique[:12]}",
    }


def ice_candidate(channel_arn: str, recipient: str, tag: str, index: int) -> dict[str, Any]:
    """A host ICE candidate from the channel's MASTER to viewer ``recipient``."""
    unique = uuid.uuid4().hex
    port = 50000 + index % 10000
    return {
        "channelArn": channel_arn,
        "role": "MASTER",
        "recipientClientId": recipient,
        "action": "ICE_CANDIDATE",
        "iceCandidate": {
            "candidate": f"candidate:{index} 1 udp 2122260223 192.0.2.{index % 250 + 1} {port} "
            "typ host generation 0",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": unique[:4],
        },
        "correlationId": f"{tag}-ice-{unique[:12]}",
    }


def viewer_sessions(
    channel_arns: Sequence[str], sessions: int, *, candidates: int = 4, seed: int = 7
) -> list[dict[str, Any]]:
    """Requests of ``sessions`` viewer sessions, each one SDP answer then ``candidates`` ICE
    candidates from the MASTER, sessions spread round-robin over the channels.

    Sessions overlap as concurrent viewers do: the sessions' sequences are merged at random
    (seeded), each session keeping its own order (answer first).
    """
    sequences: list[list[dict[str, Any]]] = []
    for number in range(sessions):
        channel = channel_arns[number % len(channel_arns)]
        viewer = f"viewer-{number}"
        tag = f"s{number}"
        sequence = [sdp_answer(channel, viewer, tag)]
        sequence += [ice_candidate(channel, viewer, tag, i) for i in range(candidates)]
        sequences.append(sequence)
    rng = random.Random(seed)
    merged: list[dict[str, Any]] = []
    cursors = [0] * len(sequences)
    live = list(range(len(sequences)))
    while live:
        pick = rng.choice(live)
        merged.append(sequences[pick][cursors[pick]])
        cursors[pick] += 1
        if cursors[pick] == len(sequences[pick]):
            live.remove(pick)
    return merged


def sqs_event(bodies: Sequence[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source would build for these request bodies (standard
    queue, first receive, sent now)."""
    sent = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent,
                    "SenderId": "AIDABENCHMARK",
                    "ApproximateFirstReceiveTimestamp": sent,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for body in bodies
        ]
    }


def records_named(event: dict[str, Any], message_ids: Sequence[str]) -> dict[str, Any]:
    """The event with only the records whose message id is listed (a redelivery of them)."""
    wanted = set(message_ids)
    return {"Records": [r for r in event["Records"] if r["messageId"] in wanted]}
