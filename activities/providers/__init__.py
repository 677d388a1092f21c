"""Model providers behind one small interface (`base.ChatProvider`).

Each provider is one module: its API-key variable, its client, `chat()` and its error mapping. Adding one is a
module and a line in `REGISTRY`, plus its member of `workflows.models.Provider`, which model ids are checked
against wherever they enter (the gateway, the workflow input, the worker's settings).
"""

from __future__ import annotations

from activities.providers.anthropic import AnthropicProvider
from activities.providers.base import ChatProvider
from activities.providers.offline import OfflineProvider
from activities.providers.openai import OpenAIProvider
from workflows.models import Provider

REGISTRY: dict[Provider, type[ChatProvider]] = {
    Provider.OPENAI: OpenAIProvider,
    Provider.ANTHROPIC: AnthropicProvider,
    Provider.OFFLINE: OfflineProvider,
}
