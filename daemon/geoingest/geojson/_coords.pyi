from collections.abc import Callable
from typing import Any

def collection(
    features: list[Any], scale: float, precision: int, dumps: Callable[[Any], bytes], /
) -> tuple[list[bytes | None], list[tuple[int, str, bool | None]], list[int]]: ...
def colons(data: bytes, /) -> int: ...
