"""The code that runs *inside* a mixlab sandbox, before and around the untrusted program (stdlib only).

Size: ~410 lines, one file on purpose: it is shipped into the jail as a single script's text.

Not imported by mixlab (tests import it): :mod:`mixlab.sandbox` reads this file's text and runs it as ``python -I -S -c``.
It reads one marshalled dict (the job, from the trusted parent) from stdin, writes ``program.py`` into its work directory, sets its
resource limits, patches sockets and process creation away (defence in depth only: the jail is the barrier),
drops to the job's uid when started as root, then runs in one of three modes:

- ``run``:   execute ``program.py`` as ``__main__``; report ``OK``/``FAIL``/``EXC``/``EXIT``/``MEM`` on fd
  ``report`` (a verdict that is only as trustworthy as the program: see :mod:`mixlab.sandbox`);
- ``serve``: the *candidate* side of a tested run: execute the candidate code, announce its top-level names
  on ``tx``, then answer call requests read from ``rx`` until EOF; it has no report descriptor;
- ``judge``: the *tests* side: execute the trusted ``setup``, bind every name the candidate announced to a
  proxy that calls into the candidate process, run the tests (and ``check(entry_point)``) and report on
  ``report``. Values cross between the two processes as a tagged binary encoding of builtin types only (see ``_enc``),
  so nothing the candidate sends can carry code or a custom ``__eq__`` into the judge.
"""

import builtins
import marshal
import os
import resource
import struct
import sys
import types

MAX_FRAME = 64 << 20  # largest message accepted on the candidate channel


def _enc(v, out=None, depth=0):
    """Tagged binary form of plain data (exact builtin types only); TypeError for anything else."""
    top = out is None
    out = bytearray() if top else out
    if depth > 200:
        raise TypeError("value nested too deeply to leave the sandbox")
    t = type(v)
    if v is None or t is bool:
        out += b"N" if v is None else (b"T" if v else b"F")
    elif t is int:
        raw = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
        out += b"i" + len(raw).to_bytes(4, "big") + raw
    elif t is float or t is complex:
        out += (b"f" + _D.pack(v)) if t is float else (b"c" + _D.pack(v.real) + _D.pack(v.imag))
    elif t is str or t is bytes or t is bytearray:
        raw = v.encode("utf-8", "surrogatepass") if t is str else bytes(v)
        out += _TAGS[t] + len(raw).to_bytes(4, "big") + raw
    elif t is list or t is tuple or t is set or t is frozenset or t is dict:
        out += _TAGS[t] + len(v).to_bytes(4, "big")
        for x in (v if t is not dict else (y for kv in v.items() for y in kv)):
            _enc(x, out, depth + 1)
    else:
        raise TypeError(f"a {t.__name__} cannot leave the sandbox (plain data only: str, int, float, bool, "
                        "None, list, tuple, set, frozenset, dict, bytes, bytearray, complex)")
    return bytes(out) if top else out


def _dec(buf):
    """Inverse of :func:`_enc`; builds builtin types only, whatever the input (ValueError if malformed)."""
    value, end = _dec_at(memoryview(buf), 0, 0)
    if end != len(buf):
        raise ValueError("trailing bytes on the candidate channel")
    return value


def _dec_at(buf, i, depth):
    if depth > 200 or i >= len(buf):
        raise ValueError("malformed value on the candidate channel")
    tag, i = bytes(buf[i : i + 1]), i + 1
    if tag in (b"N", b"T", b"F"):
        return {b"N": None, b"T": True, b"F": False}[tag], i
    if tag in (b"f", b"c"):
        n = 8 if tag == b"f" else 16
        if i + n > len(buf):
            raise ValueError("malformed value on the candidate channel")
        a = _D.unpack_from(buf, i)[0]
        return (a if tag == b"f" else complex(a, _D.unpack_from(buf, i + 8)[0])), i + n
    if i + 4 > len(buf):
        raise ValueError("malformed value on the candidate channel")
    n, i = int.from_bytes(buf[i : i + 4], "big"), i + 4
    if tag in (b"i", b"s", b"b", b"B"):
        if i + n > len(buf):
            raise ValueError("malformed value on the candidate channel")
        raw = bytes(buf[i : i + n])
        if tag == b"i":
            return int.from_bytes(raw, "big", signed=True), i + n
        if tag == b"s":
            return raw.decode("utf-8", "surrogatepass"), i + n
        return (raw if tag == b"b" else bytearray(raw)), i + n
    kind = _KINDS.get(tag)
    if kind is None or n > len(buf):
        raise ValueError("malformed value on the candidate channel")
    items = []
    for _ in range(2 * n if kind is dict else n):
        x, i = _dec_at(buf, i, depth + 1)
        items.append(x)
    try:
        if kind is dict:
            return dict(zip(items[::2], items[1::2], strict=True)), i
        return kind(items), i
    except TypeError:  # an unhashable key or member
        raise ValueError("malformed value on the candidate channel") from None


_D = struct.Struct(">d")
_TAGS = {str: b"s", bytes: b"b", bytearray: b"B", list: b"l", tuple: b"t", set: b"S", frozenset: b"z", dict: b"d"}
_KINDS = {b"l": list, b"t": tuple, b"S": set, b"z": frozenset, b"d": dict}


def _put(fd, msg):
    _send(fd, _enc(msg))


def _send(fd, data):
    data = len(data).to_bytes(8, "big") + data
    while data:
        data = data[os.write(fd, data):]


def _recv(fd):
    """One message's bytes; None at EOF. Oversized or truncated frames raise ValueError/EOFError."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > MAX_FRAME:
        raise ValueError("oversized message on the candidate channel")
    body = _read_exact(fd, n) if n else b""
    if body is None:
        raise EOFError("the candidate process ended in the middle of a message")
    return body


def _read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            if got:
                raise EOFError("the candidate process ended in the middle of a message")
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _limits(job):
    for name, val in job["rlimits"].items():
        res = getattr(resource, "RLIMIT_" + name)
        hard = resource.getrlimit(res)[1]
        hi = val + 1 if name == "CPU" else val  # CPU: SIGXCPU at the soft limit, SIGKILL 1 s later
        if hard != resource.RLIM_INFINITY:
            val, hi = min(val, hard), min(hi, hard)
        resource.setrlimit(res, (val, hi))


def _denied(*a, **k):
    raise PermissionError(1, "disabled in the mixlab sandbox")


def _patch(job):
    if job["block_network"]:
        import _socket
        import socket

        class _NoSocket(socket.socket):
            def __init__(self, *a, **k):
                _denied()

        for mod in (socket, _socket):
            mod.socket = _NoSocket
            for n in ("socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo",
                      "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
                if hasattr(mod, n):
                    setattr(mod, n, _denied)
    if job["block_subprocess"]:
        import _posixsubprocess
        _posixsubprocess.fork_exec = _denied
        for n in ("fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "spawnv", "spawnve",
                  "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe"):
            if hasattr(os, n):
                setattr(os, n, _denied)


def _drop(uid):
    if uid >= 0 and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            os.write(2, b"mixlab sandbox: could not leave uid 0\n")
            os._exit(125)


def _report(fd, kind, detail="-"):
    try:  # noqa: SIM105 (contextlib would cost an import in every jail)
        os.write(fd, (f"{kind} {detail}\n").encode())
    except OSError:
        pass


def _main_module(path):
    main = types.ModuleType("__main__")
    main.__file__ = os.path.abspath(path)
    sys.modules["__main__"] = main
    return main


def _exec_file(path, ns):
    with open(path, "rb") as f:
        code = compile(f.read(), ns.get("__file__", path), "exec")
    exec(code, ns)


def _run(job, rep):
    main = _main_module("program.py")
    try:
        _exec_file("program.py", main.__dict__)
        sys.stdout.flush()
    except MemoryError:
        try:
            os.write(rep, b"MEM -\n")
            os.write(2, b"MemoryError\n")
        finally:
            os._exit(1)
    except SystemExit as e:
        _report(rep, "EXIT", repr(e.code).replace(" ", ""))
        raise
    except BaseException as e:
        _traceback(e)
        _report(rep, "FAIL" if isinstance(e, AssertionError) else "EXC", type(e).__name__)
        sys.exit(1)
    else:
        _report(rep, "OK")


def _traceback(e):
    try:
        import traceback
        traceback.print_exc()
    except BaseException:
        os.write(2, (f"{type(e).__name__}: {e}\n").encode("utf-8", "replace"))


def _serve(job):
    rx, tx = job["rx"], job["tx"]
    main = _main_module("program.py")
    ns = main.__dict__
    try:
        _exec_file("program.py", ns)
        sys.stdout.flush()
    except SystemExit as e:
        _put(tx, ["exit", repr(e.code)])
        return
    except BaseException as e:
        _traceback(e)
        _put(tx, ["error", type(e).__name__, str(e)[:2000]])
        return
    names = {}
    for k, v in list(ns.items()):
        if k.startswith("__") or isinstance(v, types.ModuleType):
            continue
        if callable(v):
            names[k] = None
        else:
            try:
                _enc(v)
                names[k] = [v]
            except (TypeError, RecursionError):
                pass
    _put(tx, ["ready", names])
    while True:
        msg = _recv(rx)
        if msg is None:
            return
        name, args, kwargs = _dec(msg)  # from the trusted judge
        try:
            value = ns[name](*args, **kwargs)
            _enc(value)
            out = ["ok", value]
        except SystemExit as e:
            out = ["exit", repr(e.code)]
        except BaseException as e:
            out = ["exc", type(e).__name__, str(e)[:2000]]
        sys.stdout.flush()
        _put(tx, out)


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin one (its type name and message are kept)."""


class CandidateExit(BaseException):
    """The candidate called ``exit()``/``sys.exit()``: never a pass."""


class CandidateGone(BaseException):
    """The candidate process died, or broke the channel protocol."""


_NOT_REBUILT = ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException", "BaseExceptionGroup")


def _rebuild(typename, message):
    cls = getattr(builtins, typename, None)
    if (isinstance(cls, type) and issubclass(cls, BaseException) and typename not in _NOT_REBUILT
            and issubclass(cls, Exception)):
        try:
            return cls(message)
        except Exception:
            pass
    return CandidateError(f"{typename}: {message}")


def _judge(job, rep):
    rx, tx = job["rx"], job["tx"]

    def ask():
        try:
            msg = _recv(rx)
            if msg is None:
                raise CandidateGone("the candidate process ended")
            msg = _dec(msg)
        except (ValueError, EOFError, RecursionError, MemoryError) as e:
            raise CandidateGone(f"{type(e).__name__}: {e}") from None
        if type(msg) is not list or not msg or type(msg[0]) is not str:
            raise CandidateGone("unexpected message from the candidate")
        return msg

    def proxy_for(name):
        def proxy(*args, **kwargs):
            _put(tx, [name, args, kwargs])
            msg = ask()
            if msg[0] == "ok" and len(msg) == 2:
                return msg[1]
            if msg[0] == "exit":
                raise CandidateExit(msg[1])
            if msg[0] == "exc":
                raise _rebuild(str(msg[1]), str(msg[2]))
            raise CandidateGone("unexpected message from the candidate")
        proxy.__name__ = proxy.__qualname__ = name
        return proxy

    main = _main_module("tests.py")
    ns = main.__dict__
    try:
        if job["setup"]:
            exec(compile(job["setup"], "setup.py", "exec"), ns)
        trusted = set(ns) - {job["entry_point"]}
        hello = ask()
        if hello[0] == "exit":
            return _report(rep, "EXIT", str(hello[1]).replace(" ", ""))
        if hello[0] == "error":
            kind = "FAIL" if hello[1] == "AssertionError" else ("MEM" if hello[1] == "MemoryError" else "EXC")
            return _report(rep, kind, str(hello[1]))
        if hello[0] != "ready" or type(hello[1]) is not dict:
            raise CandidateGone("unexpected message from the candidate")
        for name, val in hello[1].items():
            if type(name) is not str or name in trusted:
                continue
            if val is None:
                ns[name] = proxy_for(name)
            elif type(val) is list and len(val) == 1:
                ns[name] = val[0]
        _exec_file("tests.py", ns)
        entry = job["entry_point"]
        if entry:
            if entry not in ns:
                raise NameError(f"the candidate does not define {entry!r}")
            ns["check"](ns[entry])
        sys.stdout.flush()
    except MemoryError:
        _report(rep, "MEM")
        os._exit(1)
    except CandidateExit as e:
        _report(rep, "EXIT", str(e).replace(" ", "") or "None")
        sys.exit(1)
    except CandidateGone as e:
        _report(rep, "GONE", "-")
        os.write(2, (f"candidate process: {e}\n").encode())
        sys.exit(1)
    except BaseException as e:
        _traceback(e)
        _report(rep, "FAIL" if isinstance(e, AssertionError) else "EXC", type(e).__name__)
        sys.exit(1)
    else:
        _report(rep, "OK")


def main():
    job = marshal.loads(sys.stdin.buffer.read())  # from the trusted parent
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    name = "tests.py" if job["mode"] == "judge" else "program.py"
    with open(name, "w", encoding="utf-8") as f:
        f.write(job["program"])
    _limits(job)
    rep = job.get("report", -1)
    if rep >= 0:
        import _signal

        def on_xcpu(*_):
            os.write(rep, b"CPU -\n")
            os._exit(1)

        _signal.signal(_signal.SIGXCPU, on_xcpu)
    _patch(job)
    _drop(job["uid"])
    builtins.exit = builtins.quit = sys.exit
    {"run": _run, "judge": _judge}.get(job["mode"], lambda j, r: _serve(j))(job, rep)


if __name__ == "__main__":  # run with -c inside the jail; importable for tests
    main()
