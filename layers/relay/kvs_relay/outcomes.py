"""Delivery outcomes: the one result each request ends in, and its publication to SNS.

:class:`DeliveryOutcome` is the versioned JSON published on the outcome topic (schema file
``schemas/delivery-outcome.v1.schema.json``, generated from this model). The SNS message carries
the attributes ``status``, ``action`` and ``channelArn`` so subscriptions can filter on them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from kvs_relay.protocol import Action, FieldViolation, Role, StatusResponse

OUTCOME_SCHEMA_VERSION: Literal["1"] = "1"


class OutcomeStatus(StrEnum):
    """How a request ended."""

    SENT = "SENT"
    """Sent, and no STATUS_RESPONSE error arrived within the status window."""
    REJECTED = "REJECTED"
    """Invalid request: never sent, never retried."""
    FAILED = "FAILED"
    """The service answered with a permanent error (a STATUS_RESPONSE, or the channel is gone)."""
    RETRY = "RETRY"
    """A transient failure: reported as a batchItemFailure so SQS delivers the request again."""


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates replaced: JSON for SNS must be valid UTF-8.

    Only text from outside can carry them (a STATUS_RESPONSE a misbehaving service sent with a
    ``\\ud800`` escape, or a body's field name); without this the outcome could not be published.
    """
    return text.encode("utf-8", "replace").decode("utf-8")


class Violation(BaseModel):
    """One broken rule of a REJECTED request."""

    model_config = ConfigDict(frozen=True)

    field: str
    rule: str

    @field_validator("field", "rule")
    @classmethod
    def _valid_unicode(cls, value: str) -> str:
        return valid_unicode(value)

    @classmethod
    def of(cls, violation: FieldViolation) -> Violation:
        return cls(field=violation.field, rule=violation.rule)


class StatusResponseBody(BaseModel):
    """The STATUS_RESPONSE the signaling service answered, as it came."""

    model_config = ConfigDict(frozen=True)

    correlationId: str
    errorType: str
    statusCode: str
    description: str

    @field_validator("correlationId", "errorType", "statusCode", "description")
    @classmethod
    def _valid_unicode(cls, value: str) -> str:
        return valid_unicode(value)

    @classmethod
    def of(cls, status: StatusResponse) -> StatusResponseBody:
        return cls(
            correlationId=status.correlation_id,
            errorType=status.error_type,
            statusCode=status.status_code,
            description=status.description,
        )


class DeliveryOutcome(BaseModel):
    """The outcome of one signaling request (the JSON message published to SNS)."""

    model_config = ConfigDict(
        frozen=True,
        title="DeliveryOutcome",
        json_schema_extra={
            "$id": "https://kvs-signaling-relay/schemas/delivery-outcome.v1.schema.json"
        },
    )

    schemaVersion: Literal["1"] = OUTCOME_SCHEMA_VERSION
    status: OutcomeStatus
    messageId: str = Field(description="The SQS message id of the request.")
    correlationId: str | None = Field(
        default=None,
        description="The correlationId sent (the request's own or derived from messageId).",
    )
    correlationIdDerived: bool = Field(
        default=False, description="True when the relay derived the correlationId."
    )
    channelArn: str | None = None
    channelName: str | None = None
    role: Role | None = None
    clientId: str | None = None
    action: Action | None = None
    recipientClientId: str | None = None
    recipientIgnored: bool = Field(
        default=False,
        description="A VIEWER named a recipient: the service ignores it, and it was not sent.",
    )
    reason: str | None = Field(default=None, description="Why, in words (no payloads, no URLs).")
    violations: list[Violation] = Field(default_factory=list)
    statusResponse: StatusResponseBody | None = None
    approximateReceiveCount: int | None = None
    messageGroupId: str | None = Field(
        default=None, description="The FIFO message group, on FIFO queues."
    )
    occurredAt: AwareDatetime

    @field_validator("reason")
    @classmethod
    def _reason_unicode(cls, value: str | None) -> str | None:
        return None if value is None else valid_unicode(value)

    def sns_attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes for subscription filter policies (empty ones left out)."""
        values = {
            "status": self.status.value,
            "action": self.action.value if self.action else None,
            "channelArn": self.channelArn,
        }
        return {
            name: {"DataType": "String", "StringValue": value}
            for name, value in values.items()
            if value
        }


class OutcomePublisher(Protocol):
    """Publishes one outcome; raises when it could not (the record is then retried)."""

    def publish(self, outcome: DeliveryOutcome) -> None: ...


class SnsOutcomePublisher:
    """Publishes outcomes to an SNS topic as JSON with filterable message attributes."""

    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self._topic_arn = topic_arn

    def publish(self, outcome: DeliveryOutcome) -> None:
        self._sns.publish(
            TopicArn=self._topic_arn,
            Message=outcome.model_dump_json(),
            MessageAttributes=outcome.sns_attributes(),
        )


def must_publish(outcome: DeliveryOutcome, *, publish_sent: bool) -> bool:
    """Every outcome is published except SENT ones when switched off.

    REJECTED, FAILED, RETRY and anything carrying a STATUS_RESPONSE always go out.
    """
    if outcome.status is OutcomeStatus.SENT and outcome.statusResponse is None:
        return publish_sent
    return True
