"""People: who may read, answer, operate and manage, and the answer links sent to them."""

from hitl_bus.people.roles import Action as Action
from hitl_bus.people.roles import Role as Role
from hitl_bus.people.store import Person as Person
from hitl_bus.people.store import PersonExists as PersonExists
from hitl_bus.people.store import PersonNotFound as PersonNotFound

__all__ = ["Action", "Person", "PersonExists", "PersonNotFound", "Role"]
