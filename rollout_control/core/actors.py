"""Who made a change: a dashboard user, an API token, or the system (beat, a task, a command)."""

from dataclasses import dataclass
from typing import Protocol

from django.http import HttpRequest

from rollout_control.core.models import AuditEntry


class TokenLike(Protocol):
    pk: int
    name: str
    user_id: int | None


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    label: str
    user_id: int | None = None
    token_id: int | None = None
    token_name: str = ""

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(type=AuditEntry.ActorType.SYSTEM, label=label)

    @classmethod
    def for_user(cls, user: object) -> "Actor":
        return cls(type=AuditEntry.ActorType.USER, label=user.get_username(), user_id=user.pk)

    @classmethod
    def for_token(cls, token: TokenLike) -> "Actor":
        # A token tied to a user acts for that user, but the entry still names the token:
        # "rita (token ops)"; an untied token (automation) is "token:ops".
        username = getattr(token, "username", "")
        label = f"{username} (token {token.name})" if username else f"token:{token.name}"
        return cls(
            type=AuditEntry.ActorType.TOKEN,
            label=label,
            user_id=token.user_id,
            token_id=token.pk,
            token_name=token.name,
        )

    @classmethod
    def from_request(cls, request: HttpRequest) -> "Actor":
        from rollout_control.core.tokens import TokenSnap

        auth = getattr(request, "auth", None)
        if isinstance(auth, TokenSnap):
            return cls.for_token(auth)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls.for_user(user)
        return cls.system("anonymous")
