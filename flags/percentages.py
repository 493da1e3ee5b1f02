"""Percentages, the one way: a value from 0 to 100 with at most two decimals, held as basis points.

Every percentage the product reads (API bodies, plan definitions, forms, recorded flag states)
goes through `to_basis_points`; every one it shows goes through `as_percentage`. Decimal
arithmetic throughout: 0.07 % is 7 basis points, never 7.000000000000001.
"""

from decimal import Decimal, InvalidOperation

from rollout_control.core.exceptions import DomainError

Number = Decimal | int | float | str


def to_basis_points(
    value: Number, *, field: str, error: type[DomainError] = DomainError
) -> int:
    """`value` (0..100, at most two decimals) as basis points; `error(message, field=field)`
    otherwise. Floats are read by their shortest repr (12.5 → 1250), booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise error("Must be a number from 0 to 100.", field=field)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise error("Must be a number from 0 to 100.", field=field) from None
    if not number.is_finite() or number < 0 or number > 100:
        raise error("Must be a number from 0 to 100.", field=field)
    points = number * 100
    if points != points.to_integral_value():
        raise error("At most two decimal places.", field=field)
    return int(points)


def as_percentage(basis_points: int) -> int | float:
    """Basis points as a JSON number with at most two decimals (12.5, 33.33, 100)."""
    whole, rest = divmod(basis_points, 100)
    return whole if rest == 0 else float(Decimal(basis_points) / 100)
