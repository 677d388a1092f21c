"""The Temporal codec-server JSON format: `{"payloads": [{"metadata": {key: base64}, "data": base64}]}`."""

from __future__ import annotations

import base64
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload

from api.schema import SchemaStrict

MAX_PAYLOADS = 10_000
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
PLAIN_JSON = base64.b64encode(b"json/plain").decode()  # the `encoding` metadata of an unencrypted JSON payload
Base64 = Annotated[str, Field(pattern=BASE64_PATTERN, description="standard base64, padded")]


class PayloadJson(SchemaStrict):
    """One `temporal.api.common.v1.Payload` in its protobuf JSON form."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Base64] = Field(default_factory=dict)
    data: Base64 = ""

    @classmethod
    def of(cls, payload: Payload) -> PayloadJson:
        return cls(
            metadata={k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
            data=base64.b64encode(payload.data).decode(),
        )

    def payload(self) -> Payload:
        return Payload(
            metadata={k: base64.b64decode(v) for k, v in self.metadata.items()}, data=base64.b64decode(self.data)
        )


class Payloads(SchemaStrict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "ImhpIg=="}]}]
        },
    )

    payloads: list[PayloadJson] = Field(default_factory=list, max_length=MAX_PAYLOADS)


class CodecHealth(BaseModel):
    status: str = "ok"
    active_key_id: str = Field(description="the key id new payloads are encrypted with")
