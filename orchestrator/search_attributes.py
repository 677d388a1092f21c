"""Register the search attributes the workflow keeps (`workflows.models.SEARCH_ATTRIBUTES`), from that one list.

    python -m orchestrator.search_attributes register   # on the server of TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE
    python -m orchestrator.search_attributes flags      # `--search-attribute Name=Type ...` for start-dev

`register` is idempotent: it adds the missing ones and says which it found. `make run`'s dev server gets them as
start flags, the compose cluster runs `register` once, a production namespace needs it once per namespace (and
after an upgrade that adds one): tasks keep their search attributes only when the namespace has all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

from orchestrator.temporal import connect_client, exit_now
from workflows.models import SEARCH_ATTRIBUTES


def type_name(value_type: int) -> str:
    """`Keyword`, `Double`, `Int`, ... as the `temporal` CLI and the dev server spell the indexed value type."""
    name = IndexedValueType.Name(IndexedValueType.ValueType(value_type))
    return name.removeprefix("INDEXED_VALUE_TYPE_").title().replace("_", "")


def start_dev_flags() -> list[str]:
    """`--search-attribute Name=Type` for every attribute, for `temporal server start-dev`."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={type_name(key.indexed_value_type)}"]
    return flags


async def register() -> list[str]:
    """Add the attributes the namespace lacks; returns their names. Fails if one exists with another type."""
    client = await connect_client(attempts=10)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    wrong = [
        key.name
        for key in SEARCH_ATTRIBUTES
        if listed.custom_attributes.get(key.name, key.indexed_value_type) != key.indexed_value_type
    ]
    if wrong:
        raise SystemExit(f"search attributes registered with another type in {client.namespace}: {', '.join(wrong)}")
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in SEARCH_ATTRIBUTES
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["register", "flags"])
    args = parser.parse_args()
    if args.command == "flags":
        sys.stdout.write(" ".join(start_dev_flags()) + "\n")
        return
    added = asyncio.run(register())
    names = ", ".join(key.name for key in SEARCH_ATTRIBUTES)
    sys.stdout.write(f"registered: {', '.join(added)}\n" if added else f"already registered: {names}\n")
    exit_now(0)


if __name__ == "__main__":
    main()
