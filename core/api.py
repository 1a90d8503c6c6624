"""How a front end object lists which collaborator answers each method of the service API."""
from __future__ import annotations


class AnsweredBy:
    """A method answered by one collaborator: ``create_group = AnsweredBy("mirrors")`` in the class body.

    ``getattr(obj, "create_group")`` is then ``obj.mirrors.create_group``: the REST routes,
    the console's bridge and ``mirrorctl`` call the service API by name, and the class
    says in one line where each name is answered.
    """

    def __init__(self, collaborator: str, method: str | None = None):
        self.collaborator = collaborator
        self.method = method

    def __set_name__(self, owner, name: str) -> None:
        self.method = self.method or name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return getattr(getattr(obj, self.collaborator), self.method)
