"""Cache keys and tags, in one place so readers and writers cannot disagree on a spelling."""

import hashlib


def user_tag(user_id: str) -> str:
    """Covers the user, their subscription, natal data and session lookups."""
    return f"user:{user_id}"


def user_by_id(user_id: str) -> str:
    return f"user:id:{user_id}"


def user_by_email(email: str) -> str:
    return f"user:email:{email}"


def session_lookup(token: str) -> str:
    # Hashed: a session token is a secret and must not show up in Redis key names.
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


def subscription_of(user_id: str) -> str:
    return f"subscription:user:{user_id}"


def natal_data_of(user_id: str) -> str:
    return f"natal:user:{user_id}"


def chart_tag(user_id: str | None) -> str:
    return f"chart:{user_id or '-'}"


def chart_by_pair(user_id: str, chart_type: str) -> str:
    return f"chart:pair:{user_id}:{chart_type}"


def chart_by_id(chart_id: str) -> str:
    return f"chart:id:{chart_id}"
