"""The `search_attributes_registered` local activity: are the workflow's search attributes registered on the server?

The workflow asks once, at its start, unless its starter set `TaskStatus` (`workflows.models.start_search_attributes`,
which the gateway uses once it has checked), and upserts its search attributes only when the answer is yes. A server
without them (a fresh cluster before `scripts/register_search_attributes.sh`, the time-skipping test server)
would otherwise reject every workflow task that upserts one, and the task would be stuck. The answer is recorded
in the history (a local-activity marker), so replays take the same branch. Each worker process caches a positive
answer per server and namespace; a negative one is asked again by the next task, so registering takes effect at once.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel
from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

logger = logging.getLogger(__name__)

SEARCH_ATTRIBUTES_ACTIVITY = "search_attributes_registered"

_known: dict[tuple[str, str], set[str]] = {}  # (server, namespace) -> registered attribute names


class SearchAttributesCheck(BaseModel):
    names: list[str]


@activity.defn(name=SEARCH_ATTRIBUTES_ACTIVITY)
async def search_attributes_registered(check: SearchAttributesCheck) -> bool:
    client = activity.client()
    namespace = activity.info().namespace
    where = (client.service_client.config.target_host, namespace)
    wanted = set(check.names)
    if not wanted <= _known.get(where, set()):
        try:
            response = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
        except Exception as exc:  # the server's answer decides; no answer means "not registered"
            logger.warning("cannot list search attributes of namespace %s: %s", namespace, exc)
            return False
        _known[where] = set(response.custom_attributes) | set(response.system_attributes)
    missing = sorted(wanted - _known.get(where, set()))
    if missing:
        logger.warning(
            "search attributes %s are not registered in namespace %s: tasks run without them "
            "(register them with scripts/register_search_attributes.sh)",
            ", ".join(missing),
            namespace,
        )
    return not missing
