"""Who is acting in this command: an agent, or (a team without agents) a plain name.

Apart from ``eddymail.services.agents`` (the agent list and its changes): storing a message
names its actor, and a mail server's ``ingest`` need not load the rest (issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eddymail.db.models import Agent, AgentDepartment


@dataclass(frozen=True)
class Actor:
    """Who is acting in this command: an agent, or (a team without agents) a plain name."""

    agent_id: int | None = None
    handle: str | None = None
    name: str = ""
    signature: str = ""
    departments: tuple[int, ...] = field(default=())

    @property
    def label(self) -> str:
        """How the history and system messages name this actor."""
        if self.handle and self.name and self.name != self.handle:
            return f"{self.name} ({self.handle})"
        return self.name or self.handle or "staff"


ANONYMOUS = Actor()


def describe_actor(agent: Agent) -> Actor:
    """The actor for an agent row."""
    departments = tuple(row.department_id for row in
                        AgentDepartment.select().where(AgentDepartment.agent == agent))
    return Actor(agent.id, agent.handle, agent.name, agent.signature, departments)
