"""Small asyncio primitives for what every open WebSocket keeps for its whole life.

An `asyncio.Event` allocates a deque for its waiters up front, and an `asyncio.Queue` four of them
(items, getters, putters, and its `join()` event's): about 600 bytes each on CPython, 3 KiB per
queue, although almost always nobody waits and nothing is queued. With thousands of idle sockets
that was a fifth of the memory per connection (bench/notes.md). These two do what the connection
needs of them and allocate waiters only while somebody waits.
"""
import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Flag:
    """`asyncio.Event`'s interface (set, clear, is_set, wait), with no waiter list until a wait."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class ReceiveQueue(Generic[T]):
    """What uvicorn asks of the ASGI receive queue of a WebSocket (`put_nowait`, `get`, `empty`,
    `qsize`), unbounded like the `asyncio.Queue` it replaces. Items are few: uvicorn stops reading
    the socket while one is queued."""

    __slots__ = ("_items", "_getters")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None

    async def get(self) -> T:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
                if self._items and getter.done() and not getter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the item's wake-up on
                raise
        return self._items.pop(0)

    def __repr__(self) -> str:
        return f"<ReceiveQueue items={len(self._items)} getters={len(self._getters or ())}>"

