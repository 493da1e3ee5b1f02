import hashlib

from django.db.models import QuerySet
from django.utils import timezone

from rollout_control.core.models import ApiToken, AuditEntry


def token_hash(raw: str) -> str:
    # SHA-256, not a password hash: tokens carry 256 bits of entropy and are checked per request.
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_get_usable(*, raw: str) -> ApiToken | None:
    """The live token for a raw secret, or None when unknown, expired or revoked."""
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw)).first()
    if token is None or not token.is_usable(timezone.now()):
        return None
    return token


def audit_entries_for(*, object_type: str, object_id: str) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(
        object_type=object_type, object_id=str(object_id)
    ).select_related("actor_user", "actor_token")
