"""Reporters' contacts on a case (personal data): kept as one `reporter:` line of the case's description,
shown in full only to the roles that act on a case (they may call the reporter back), hidden otherwise."""

from __future__ import annotations

REPORTER_LINE = "reporter: "
HIDDEN_REPORTER = REPORTER_LINE + "(hidden)"
# The roles that act on a case; readers, sensors and the public see the line hidden.
SEES_CONTACTS = frozenset({"admin", "reviewer", "dispatcher", "handler"})


def reporter_line(contacts: list[str]) -> str | None:
    return REPORTER_LINE + ", ".join(contacts) if contacts else None


def may_see_contacts(role: str | None) -> bool:
    return role in SEES_CONTACTS


def hide_contacts(description: str | None) -> str | None:
    """`description` with the reporter's contacts replaced by "(hidden)"."""
    if not description or REPORTER_LINE not in description:
        return description
    return "\n".join(HIDDEN_REPORTER if line.startswith(REPORTER_LINE) else line
                     for line in description.splitlines())
