"""What a notification template is: its name, purpose, audience and variables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateVariable:
    """One value a template may use, such as ``ticket.id``.

    ``multiline`` values (the agent's reply) keep their line breaks; every other value is
    flattened to one line before rendering, because it came from an email header or a name
    and a line break in it can only be an attempt to forge text.
    ``required`` variables must appear in the template (the test letter's ``token``).
    """

    name: str
    description: str
    multiline: bool = False
    required: bool = False


@dataclass(frozen=True)
class TemplateSpec:
    """A notification eddymail knows how to send, and the variables it can be given.

    ``automatic`` is true for mail sent without a person pressing a key (those carry
    ``Auto-Submitted`` and are the ones to switch off while setting up a mailbox full of
    old mail). ``audience`` says who receives it: ``customer`` templates never get a
    variable holding text a customer wrote; ``staff`` ones (to agents) may.
    """

    name: str
    description: str
    variables: tuple[TemplateVariable, ...]
    automatic: bool
    audience: str = "customer"

    @property
    def variable_names(self) -> tuple[str, ...]:
        """The dotted names of the variables, in display order."""
        return tuple(variable.name for variable in self.variables)


# Variables several templates share, customers' and staff's alike.
TICKET_ID = TemplateVariable("ticket.id", "Ticket number, as in the [#123] subject tag")
TICKET_SUBJECT = TemplateVariable("ticket.subject", "Ticket subject as the customer wrote it")
DEPARTMENT = TemplateVariable("department.name", "Department the ticket is in now")
HELPDESK = TemplateVariable("helpdesk.name", "Name of the helpdesk or company customers know")
