"""Client library and CLI for services that enqueue signaling requests for the relay."""

from kvs_relay_producer.client import (
    Enqueued,
    EnqueueReport,
    InvalidRequest,
    NotEnqueued,
    SignalingProducer,
    deduplication_id,
    message_group_id,
)

__all__ = [
    "EnqueueReport",
    "Enqueued",
    "InvalidRequest",
    "NotEnqueued",
    "SignalingProducer",
    "deduplication_id",
    "message_group_id",
]
