"""The API keys shared by the gateway, the memory API and the codec server."""

from __future__ import annotations

import pytest

from api.auth import ApiKeyConfigError, ApiKeyRegistry


def test_api_key_registry_parses_tenants_and_refuses_unsafe_keys(tmp_path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# tenants\ncarol=carol-key-0123456789abcdef\n")
    registry = ApiKeyRegistry.from_env(
        {
            "ORCHESTRATOR_API_KEY": "default-key-0123456789abcdef",
            "ORCHESTRATOR_API_KEYS": "alice=alice-key-0123456789abcdef, bob=bob-key-0123456789abcdef",
            "ORCHESTRATOR_API_KEYS_FILE": str(keys_file),
        }
    )
    assert registry.tenant_for("alice-key-0123456789abcdef") == "alice"
    assert registry.tenant_for("carol-key-0123456789abcdef") == "carol"
    assert registry.tenant_for("default-key-0123456789abcdef") == "default"
    assert registry.tenant_for("alice-key-0123456789abcdeX") is None
    assert registry.tenant_for("") is None and registry.tenant_for(None) is None
    for bad in ({}, {"ORCHESTRATOR_API_KEY": "short"}, {"ORCHESTRATOR_API_KEY": "changeme-changeme-changeme"},
                {"ORCHESTRATOR_API_KEY": "a" * 40}, {"ORCHESTRATOR_API_KEYS": "no-equals-sign"},
                {"ORCHESTRATOR_API_KEYS": "a=same-key-0123456789abcdef,b=same-key-0123456789abcdef"},
                {"ORCHESTRATOR_API_KEYS": "bad tenant=key-0123456789abcdefgh"},
                {"ORCHESTRATOR_API_KEYS_FILE": str(tmp_path / "missing")}):  # fmt: skip
        with pytest.raises(ApiKeyConfigError):
            ApiKeyRegistry.from_env(bad)
