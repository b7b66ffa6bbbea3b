"""The agent session on its control connection, as one state table (h11's ``_state.py``), without I/O.

A host's ``record -A`` and a guest's ``agent`` talk over one connection in a fixed order
(shared/spec/agent-protocol.md §3): TRACE_REQ -> TRACE_RESP -> SEND_DATA... FIN_DATA (the guest's file
metadata) -> recording -> CLOSE -> CLOSE_RESP.  Why a table rather than code that reads "the next
message" at each step: every (state, message) pair then has one answer, written once and used by both
roles, so a message out of order is a :class:`HandshakeError` naming the state and the message (one
line for the user) instead of whatever the reading code happened to do with it.

:class:`Handshake` is the only mutable object: the driver (:mod:`.agent` for the guest, :mod:`.session`
for the host) passes each message it sends through :meth:`Handshake.send` and each one it receives
through :meth:`Handshake.receive` before acting on it; sockets and timeouts stay in
:mod:`.transport`, bytes and their validation in :mod:`.msg`.
"""

from __future__ import annotations

import enum
from typing import Final

from . import msg as M


class Side(enum.Enum):
    """Who sends a message: the recording host or the guest's agent."""

    HOST = "host"
    AGENT = "agent"

    @property
    def other(self) -> Side:
        return Side.AGENT if self is Side.HOST else Side.HOST


class State(enum.Enum):
    """Where the conversation is; the value says what it waits for (used in error messages)."""

    REQUEST = "the trace request (TRACE_REQ)"
    RESPONSE = "the answer to the trace request (TRACE_RESP)"
    METADATA = "the trace metadata (SEND_DATA until FIN_DATA)"
    RECORDING = "the end of the recording (CLOSE)"
    CLOSING = "the close response (CLOSE_RESP)"
    CLOSED = "nothing: the session is closed"
    REFUSED = "nothing: the agent refused (NOT_SUPP)"
    ERROR = "nothing: the session failed"


SPEAKER: Final[dict[State, Side]] = {
    State.REQUEST: Side.HOST,
    State.RESPONSE: Side.AGENT,
    State.METADATA: Side.AGENT,
    State.RECORDING: Side.HOST,
    State.CLOSING: Side.AGENT,
}
"""Who may send in each state: the control connection is half-duplex (the time sync has its own)."""

TRANSITIONS: Final[dict[State, dict[type, State]]] = {
    State.REQUEST: {M.TraceReq: State.RESPONSE},
    State.RESPONSE: {M.TraceResp: State.METADATA, M.NotSupp: State.REFUSED},
    State.METADATA: {M.SendData: State.METADATA, M.FinData: State.RECORDING, M.NotSupp: State.REFUSED},
    State.RECORDING: {M.Close: State.CLOSING},
    State.CLOSING: {M.CloseResp: State.CLOSED},
}
"""state -> message type sent by :data:`SPEAKER` [state] -> next state.  Anything else is out of order."""


class Stray(enum.Enum):
    """What the receiving side does with a message the table has no entry for."""

    ANSWER_NOT_SUPP = "answer NOT_SUPP and keep waiting"
    IGNORE = "ignore it and keep waiting"


STRAYS: Final[dict[State, Stray]] = {
    State.RECORDING: Stray.ANSWER_NOT_SUPP,
    State.CLOSING: Stray.IGNORE,
}
"""States that wait for one message and let others pass, as trace-cmd's ``tracecmd_msg_wait_for_cmd``
does while waiting for CLOSE (the agent answers NOT_SUPP; never to a NOT_SUPP) and CLOSE_RESP (our
host logs and ignores them).  In every other state a stray message ends the session."""

FINAL: Final = frozenset({State.CLOSED, State.REFUSED, State.ERROR})


def opens_session(msg: object) -> bool:
    """Whether ``msg`` is what an agent waits for first (the gate's test before a session starts)."""
    return type(msg) in TRANSITIONS[State.REQUEST]


_NAMES: Final[dict[type, str]] = {cls: cmd.name for cmd, cls in (
    (M.Cmd.CLOSE, M.Close), (M.Cmd.TINIT, M.TInit), (M.Cmd.RINIT, M.RInit), (M.Cmd.SEND_DATA, M.SendData),
    (M.Cmd.FIN_DATA, M.FinData), (M.Cmd.NOT_SUPP, M.NotSupp), (M.Cmd.TRACE_REQ, M.TraceReq),
    (M.Cmd.TRACE_RESP, M.TraceResp), (M.Cmd.CLOSE_RESP, M.CloseResp), (M.Cmd.TIME_SYNC, M.TimeSync),
    (M.Cmd.TRACE_PROXY, M.TraceProxy), (M.Cmd.CONT, M.Cont))}


def message_name(msg: object) -> str:
    """The wire name of a message (``TRACE_RESP``), or its Python type for anything else."""
    return _NAMES.get(type(msg), type(msg).__name__)


class HandshakeError(M.PeerProtocolError):
    """The peer sent a message the table does not allow in the current state: the session is over.

    ``answer_not_supp``: trace-cmd answers such a message with NOT_SUPP (never a NOT_SUPP itself) before
    it gives up; the driver does the same.
    """

    def __init__(self, state: State, sender: Side, msg: object) -> None:
        self.state = state
        self.sender = sender
        self.message = msg
        self.answer_not_supp = not isinstance(msg, M.NotSupp)
        super().__init__(f"the {sender.value} sent {message_name(msg)} out of order (waiting for {state.value})")


class Handshake:
    """One side's view of the control connection: :attr:`state`, advanced by :meth:`send` and
    :meth:`receive` from :data:`TRANSITIONS`.  After an error the state is :attr:`State.ERROR` and
    every later call raises (an out-of-order stream cannot be resynchronised)."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.state = State.REQUEST

    def send(self, msg: M.Message) -> None:
        """Record that we send ``msg``; :class:`~.msg.LocalProtocolError` if the table does not allow it
        (a bug of ours: nothing is sent).  Answers to strays (NOT_SUPP) are sent outside the table."""
        state = self.state
        if state in FINAL or SPEAKER[state] is not self.side or type(msg) not in TRANSITIONS[state]:
            raise M.LocalProtocolError(f"the {self.side.value} cannot send {message_name(msg)} while waiting "
                                       f"for {state.value}")
        self.state = TRANSITIONS[state][type(msg)]

    def receive(self, msg: M.Message) -> Stray | None:
        """Check a message from the peer against the table and advance.

        Returns None when ``msg`` moved the conversation on (read :attr:`state`: :attr:`State.REFUSED`
        means the agent answered NOT_SUPP), or the :class:`Stray` action for a message the current state
        lets pass (nothing changes).  Raises :class:`HandshakeError` for a message out of order.
        """
        sender = self.side.other
        state = self.state
        if state is State.ERROR:
            raise M.LocalProtocolError("receive() after the session failed")
        if state in FINAL:
            raise self._fail(HandshakeError(state, sender, msg))
        if SPEAKER[state] is sender:
            nxt = TRANSITIONS[state].get(type(msg))
            if nxt is not None:
                self.state = nxt
                return None
        stray = STRAYS.get(state)
        if stray is None:
            raise self._fail(HandshakeError(state, sender, msg))
        return Stray.IGNORE if stray is Stray.ANSWER_NOT_SUPP and isinstance(msg, M.NotSupp) else stray

    def abandon(self) -> None:
        """Our side gives up (an abort): nothing more is sent or expected through the table."""
        self.state = State.ERROR

    def _fail(self, e: HandshakeError) -> HandshakeError:
        self.state = State.ERROR
        return e
