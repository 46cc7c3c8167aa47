"""Geometric measures that the careful check and the fused pass share.

Both checks must come to the same verdict on every ring and line, to the last
bit of floating point, so the arithmetic lives here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul


def signed_area2(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Return twice the signed area of a closed ring given as x and y columns.

    Positive means counterclockwise, the right-hand rule for exterior rings.

    Example:
        >>> signed_area2([0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0])
        1.0
    """
    area2: float = sum(map(mul, xs, ys[1:])) - sum(map(mul, xs[1:], ys))
    return area2


def jumps_antimeridian(xs: Sequence[float]) -> bool:
    """Return True when two consecutive longitudes lie more than 180 degrees apart.

    Example:
        >>> jumps_antimeridian([170.0, -170.0]), jumps_antimeridian([170.0, 180.0])
        (True, False)
    """
    # A plain loop stops at the first jump and beats building a list of steps;
    # literal bounds save a global lookup per position.
    previous = xs[0]
    for x in xs:
        if not -180.0 <= x - previous <= 180.0:
            return True
        previous = x
    return False
