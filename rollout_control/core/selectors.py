import hashlib

from django.db.models import QuerySet

from rollout_control.core.models import AuditEntry


def token_hash(raw: str) -> str:
    # SHA-256, not a password hash: tokens carry 256 bits of entropy and are checked per request.
    return hashlib.sha256(raw.encode()).hexdigest()


def audit_entries_for(*, object_type: str, object_id: str) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(
        object_type=object_type, object_id=str(object_id)
    ).select_related("actor_user", "actor_token")
