"""The agent session's state table (capture/handshake.py), driven over a socketpair by a scripted peer.

Every (state, message, sender) pair is checked against the table; then both roles run the session
through :class:`~kshark_py.capture.transport.SessionChannel` against a peer that writes bytes built by
capture/msg.py: in order, whole and byte by byte; out of order; refused; truncated (peer closes, or
stays silent).  Each failure must be one typed error within a bounded time, never a hang.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from kshark_py.capture import msg as M
from kshark_py.capture.agent import Agent
from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.handshake import (
    FINAL,
    SPEAKER,
    STRAYS,
    TRANSITIONS,
    Handshake,
    HandshakeError,
    Side,
    State,
    Stray,
    opens_session,
)
from kshark_py.capture.session import GuestConfig, HostSession
from kshark_py.capture.transport import PeerError, SessionChannel

REQ = M.TraceReq(0, 7, ("-e", "sched"), ("kvm", "ptp"))
RESP = M.TraceResp(0, 4096, 8, "", 0, (1500, 1501))
ONE_OF_EACH = [M.Close(), M.TInit(1, 4096, ("tcp",)), M.RInit((1500,)), M.SendData(b"abc"), M.FinData(),
               M.NotSupp(), REQ, RESP, M.CloseResp(), M.TimeSync("kvm", 1, b""),
               M.TraceProxy(0, 7, 1, 1), M.Cont()]
"""One message of every command of the codec."""

SCRIPT = [(Side.HOST, REQ), (Side.AGENT, RESP), (Side.AGENT, M.SendData(b"meta")), (Side.AGENT, M.FinData()),
          (Side.HOST, M.Close()), (Side.AGENT, M.CloseResp())]
"""A whole session in order: who sends what."""
WAIT = 0.5
"""The channels' receive timeout: a test that hangs fails after this, not after MSG_TIMEOUT."""


def at(state: State, side: Side) -> Handshake:
    """A handshake of ``side`` put in ``state`` by running the session script up to it."""
    hs = Handshake(side)
    for sender, m in SCRIPT:
        if hs.state is state:
            return hs
        (hs.send if sender is side else hs.receive)(m)
    assert hs.state is state
    return hs


# --- the table ------------------------------------------------------------------------------------
LIVE = [s for s in State if s not in FINAL]


@pytest.mark.parametrize("state", LIVE)
@pytest.mark.parametrize("side", list(Side))
def test_every_state_and_message_against_the_table(state, side):
    """receive(): the table's next state, the state's stray action, or HandshakeError (then ERROR);
    send(): the table's next state or LocalProtocolError (state unchanged)."""
    for m in ONE_OF_EACH:
        hs = at(state, side)
        sender = side.other
        nxt = TRANSITIONS[state].get(type(m)) if SPEAKER[state] is sender else None
        if nxt is not None:
            assert hs.receive(m) is None and hs.state is nxt
        elif state in STRAYS:
            want = Stray.IGNORE if isinstance(m, M.NotSupp) else STRAYS[state]
            assert hs.receive(m) is want and hs.state is state
        else:
            with pytest.raises(HandshakeError) as e:
                hs.receive(m)
            assert hs.state is State.ERROR and e.value.state is state and e.value.sender is sender
            assert e.value.answer_not_supp is not isinstance(m, M.NotSupp)
            assert "\n" not in str(e.value) and "out of order" in str(e.value)
            with pytest.raises(M.ProtocolError):  # an error is final
                hs.receive(REQ)
        hs = at(state, side)
        nxt = TRANSITIONS[state].get(type(m)) if SPEAKER[state] is side else None
        if nxt is not None:
            hs.send(m)
            assert hs.state is nxt
        else:
            with pytest.raises(M.LocalProtocolError):
                hs.send(m)
            assert hs.state is state


def test_final_states_accept_nothing():
    for side in Side:
        hs = at(State.CLOSED, side)
        with pytest.raises(M.LocalProtocolError):
            hs.send(M.Close())
        with pytest.raises(HandshakeError):
            hs.receive(M.CloseResp())
    assert opens_session(REQ) and not any(opens_session(m) for m in ONE_OF_EACH if m is not REQ)


# --- over a socketpair ----------------------------------------------------------------------------
class Peer:
    """The scripted other end: writes encoded messages (or any bytes), reads and decodes ours."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(5)
        self.conn = M.Connection()
        self.writers: list[threading.Thread] = []

    def send(self, *msgs: M.Message, bytewise: bool = False) -> None:
        """The messages' bytes; ``bytewise``: one byte per send, from a thread (a socketpair holds only so
        many one-byte writes before the reader drains them)."""
        data = b"".join(M.encode(m) for m in msgs)
        if not bytewise:
            self.sock.sendall(data)
            return
        t = threading.Thread(target=lambda: [self.sock.sendall(data[i:i + 1]) for i in range(len(data))],
                             daemon=True)
        t.start()
        self.writers.append(t)

    def read(self) -> M.Message:
        while (m := self.conn.next_message()) is M.NEED_DATA:
            self.conn.feed(self.sock.recv(65536))
        return m

    def nothing_more(self) -> bool:
        """True when we sent nothing further (the channel was closed or is silent)."""
        self.sock.settimeout(0.2)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            data = b""
        if data:
            self.conn.feed(data)
        return self.conn.buffered == 0


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def channel(sock: socket.socket, side: Side) -> SessionChannel:
    return SessionChannel(sock, f"{side.value} end", side, WAIT)


@pytest.mark.parametrize("bytewise", [False, True])
def test_host_role_whole_session(pair, bytewise, caplog):
    """In order, whole or a byte at a time; a stray while waiting for CLOSE_RESP is logged and skipped."""
    ours, theirs = pair
    ch, peer = channel(ours, Side.HOST), Peer(theirs)
    ch.send(REQ)
    assert peer.read() == REQ
    meta = [M.SendData(b"x" * M.MSG_MAX_DATA_LEN), M.SendData(b"yz")]
    peer.send(RESP, *meta, M.FinData(), bytewise=bytewise)
    assert ch.recv() == RESP and ch.handshake.state is State.METADATA
    assert [ch.recv() for _ in meta] == meta
    assert ch.recv() == M.FinData() and ch.handshake.state is State.RECORDING
    ch.send(M.Close())
    assert peer.read() == M.Close()
    peer.send(M.TimeSync("ptp", 1), M.CloseResp(), bytewise=bytewise)
    assert ch.recv() == M.CloseResp() and ch.handshake.state is State.CLOSED
    for t in peer.writers:
        t.join(5)
    assert "ignoring TIME_SYNC while waiting for the close response" in caplog.text


def test_agent_role_whole_session(pair):
    """The agent answers a stray during the recording with NOT_SUPP (never a NOT_SUPP) and waits on."""
    ours, theirs = pair
    ch, peer = channel(ours, Side.AGENT), Peer(theirs)
    peer.send(REQ)
    assert ch.recv() == REQ
    ch.send(RESP)
    ch.send_stream(b"m" * (M.MSG_MAX_DATA_LEN + 5))
    assert [peer.read() for _ in range(4)] == [RESP, M.SendData(b"m" * M.MSG_MAX_DATA_LEN), M.SendData(b"m" * 5),
                                               M.FinData()]
    peer.send(REQ, M.NotSupp(), M.Close())
    assert ch.recv() == M.Close() and ch.handshake.state is State.CLOSING
    assert peer.read() == M.NotSupp() and peer.nothing_more()  # one answer: to the TRACE_REQ only
    ch.send(M.CloseResp())
    assert peer.read() == M.CloseResp() and ch.handshake.state is State.CLOSED


@pytest.mark.parametrize("wrong,name", [(M.SendData(b"early"), "SEND_DATA"), (M.FinData(), "FIN_DATA"),
                                        (M.CloseResp(), "CLOSE_RESP"), (M.TimeSync("kvm", 0), "TIME_SYNC")])
def test_host_out_of_order_instead_of_trace_resp(pair, wrong, name):
    ours, theirs = pair
    ch, peer = channel(ours, Side.HOST), Peer(theirs)
    ch.send(REQ)
    peer.send(wrong)
    t0 = time.monotonic()
    with pytest.raises(HandshakeError) as e:
        ch.recv()
    assert time.monotonic() - t0 < WAIT  # at once, not after a timeout
    assert str(e.value) == (f"the agent sent {name} out of order "
                            "(waiting for the answer to the trace request (TRACE_RESP))")
    assert ch.handshake.state is State.ERROR
    assert peer.read() == REQ and peer.nothing_more()  # the host answers nothing


def test_host_out_of_order_inside_the_metadata(pair):
    ours, theirs = pair
    ch, peer = channel(ours, Side.HOST), Peer(theirs)
    ch.send(REQ)
    peer.send(RESP, M.SendData(b"a"), M.CloseResp())
    assert ch.recv() == RESP and ch.recv() == M.SendData(b"a")
    with pytest.raises(HandshakeError, match="the agent sent CLOSE_RESP out of order .waiting for the trace metadata"):
        ch.recv()


@pytest.mark.parametrize("when", ["request", "metadata"])
def test_host_refused(pair, when):
    ours, theirs = pair
    ch, peer = channel(ours, Side.HOST), Peer(theirs)
    ch.send(REQ)
    peer.send(*([RESP, M.SendData(b"a")] if when == "metadata" else []), M.NotSupp())
    while ch.handshake.state not in FINAL:
        ch.recv()
    assert ch.handshake.state is State.REFUSED
    with pytest.raises(M.LocalProtocolError):
        ch.send(M.Close())


@pytest.mark.parametrize("first", [M.Close(), M.SendData(b"x"), M.NotSupp(), RESP])
def test_agent_first_message_not_a_request(pair, first):
    """Our agent (no tracefs touched: it fails before recording): NOT_SUPP unless the host sent one, then
    the session ends with the table's error."""
    ours, theirs = pair
    peer = Peer(theirs)
    peer.send(first)
    agent = Agent(family="tcp", allowed_host="127.0.0.1", timeout=WAIT, handshake_timeout=WAIT)
    with pytest.raises(HandshakeError, match="the host sent .* out of order .waiting for the trace request"):
        agent.serve_connection(ours)
    if isinstance(first, M.NotSupp):
        assert peer.nothing_more()
    else:
        assert peer.read() == M.NotSupp() and peer.nothing_more()


@pytest.mark.parametrize("side", list(Side))
def test_truncated_message_then_close(pair, side):
    """A message cut short and the peer gone: a peer error at once."""
    ours, theirs = pair
    ch = channel(ours, side)
    if side is Side.HOST:
        ch.send(REQ)
    data = M.encode(RESP if side is Side.HOST else REQ)
    theirs.sendall(data[:len(data) - 3])
    theirs.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    with pytest.raises(PeerError, match="stream ended inside a"):
        ch.recv()
    assert time.monotonic() - t0 < WAIT


@pytest.mark.parametrize("cut", [5, M.MSG_HDR_LEN + 4])
def test_truncated_message_peer_silent(pair, cut):
    """A message cut short (inside the header or the body) and the peer silent: a timeout, not a hang."""
    ours, theirs = pair
    ch = channel(ours, Side.HOST)
    ch.send(REQ)
    theirs.sendall(M.encode(RESP)[:cut])
    t0 = time.monotonic()
    with pytest.raises(PeerError, match="peer sent nothing for"):
        ch.recv()
    assert WAIT * 0.9 < time.monotonic() - t0 < WAIT + 2


def test_oversized_frame_is_refused_before_buffering(pair):
    ours, theirs = pair
    ch = channel(ours, Side.HOST)
    ch.send(REQ)
    theirs.sendall(M.HEADER.pack(M.MSG_MAX_LEN + 1, M.Cmd.SEND_DATA, 0))
    with pytest.raises(PeerError, match="over the maximum"):
        ch.recv()


def test_local_misuse_sends_nothing(pair):
    ours, theirs = pair
    ch, peer = channel(ours, Side.HOST), Peer(theirs)
    with pytest.raises(M.LocalProtocolError, match="the host cannot send CLOSE while waiting for the trace request"):
        ch.send(M.Close())
    assert peer.nothing_more() and ch.handshake.state is State.REQUEST


# --- the host session: one line for the user ------------------------------------------------------
class ScriptedAgent:
    """A TCP "agent" that reads the TRACE_REQ and answers with the given messages, then stays connected."""

    def __init__(self, *reply: M.Message) -> None:
        self.reply = reply
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.lsock.accept()
        with conn:
            peer = Peer(conn)
            assert isinstance(peer.read(), M.TraceReq)
            peer.send(*self.reply)
            self.done.wait(10)

    def close(self) -> None:
        self.done.set()
        self.lsock.close()
        self.thread.join(5)


@pytest.mark.parametrize("reply,line", [
    ((M.SendData(b"x"),), "guest g: the agent sent SEND_DATA out of order (waiting for the answer to the trace "
                          "request (TRACE_RESP))"),
    ((M.TraceResp(0, 4096, 8, "", 0, (1,)), M.SendData(b"x"), M.CloseResp()),
     "guest g: the agent sent CLOSE_RESP out of order (waiting for the trace metadata (SEND_DATA until FIN_DATA))"),
])
def test_host_session_out_of_order_is_one_line(tmp_path, reply, line):
    """HostSession.start fails with the table's sentence, at once (the agent stays connected and silent)."""
    agent = ScriptedAgent(*reply)
    hs = HostSession(tmp_path / "trace.dat", [], [GuestConfig(f"g@127.0.0.1:{agent.port}",
                                                              specs=[EventSpec("sched", "sched_switch")])],
                     timeout=5.0, tsync_interval=-1)
    try:
        t0 = time.monotonic()
        with pytest.raises(PeerError) as e:
            hs.start()
        assert time.monotonic() - t0 < 3
        assert str(e.value) == line
        assert not (tmp_path / "trace-g.dat").exists()  # the partial guest file is removed
    finally:
        hs.close()
        agent.close()
