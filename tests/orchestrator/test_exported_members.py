"""The payload store's face: `__all__` names exactly what the package holds besides its modules."""

from types import ModuleType

from orchestrator import payload_store


def test_all_public_members_are_exported() -> None:
    members = [name for name, value in vars(payload_store).items() if not name.startswith("_")]
    public = sorted(name for name in members if not isinstance(getattr(payload_store, name), ModuleType))
    assert sorted(payload_store.__all__) == public


def test_every_exported_member_is_defined_in_a_module_of_the_package() -> None:
    for name in payload_store.__all__:
        member = getattr(payload_store, name)
        home = getattr(member, "__module__", None)
        assert home is None or home.startswith("orchestrator.payload_store."), (name, home)
