"""The Python side of `ckpt verify --python`: runs the user's model class in the user's own torch.

Started by main/verify/python-runner.ts as `python -u verify-runner.py`; it never runs alone. It
talks JSON lines over stdin/stdout (protocol 2). A line may announce a binary payload of `bytes`
bytes that follows it directly (the samples and the logits, little-endian float32). Requests:

  {"op": "hello", "protocol": 2}
      -> {"type": "hello", "protocol": 2, "python": "3.11.2", "torch": "1.13.0", "cuda": [names],
          "sentAt": seconds since the epoch (time.time()) as the answer leaves}
  {"op": "load", "label": L, "file": F, "path": [keys], "strip": [prefixes], "device": D,
   "modelClass": "file.py:Class" | "package.module:Class", "modelArgs": {...}}
      -> progress lines, then {"type": "loaded", "label": L, "keys": n, "device": D, "deviceName": ...,
          "sentAt": time.time() as the answer leaves}
  {"op": "run", "labels": [L...], "shape": [N, ...], "batch": B, "bytes": n} + n bytes of float32 input
      -> per batch of B of the N samples (the last may be smaller), per label in order:
         {"type": "logits", "label": L, "shape": [b, K], "seconds": s, "bytes": m} + m bytes
  {"op": "exit"} -> exits 0 (so does the end of stdin)

Protocol 2 (protocol 1 sent one request per batch): the app sends the samples a chunk at a time and
the runner slices the batches itself, as a plain `for i in range(0, N, B): model(x[i:i + B])` loop
does, and writes the logits of several batches at once (every OUT_HOLD_S and at the end of the
chunk; sooner at the start, see do_run). Every read or write across the pipe wakes the other
process, which then competes with torch's threads for the CPU; per-batch requests and answers
cost a quarter of the loop's time. A thread of the runner reads the requests and their samples as
they come, so the next chunk crosses the pipe while the models compute this one.

Every failure is {"type": "error", "kind": K, "message": one line, "details": traceback}, with K one
of protocol, import, constructor, load, state-dict, forward, oom, device. The checkpoint is read
only with torch.load(f, weights_only=True, map_location=device) (torch/serialization.py `load`;
weights_only exists since torch 1.13), then model.load_state_dict(sd, strict=True), model.eval(),
and inference under torch.no_grad().
"""
import importlib
import importlib.util
import json
import os
import platform
import queue
import sys
import threading
import time
import traceback

PROTOCOL = 2
OUT_HOLD_S = 0.1  # the longest logits wait before they are written (the app's progress rate)
PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size
# The protocol keeps the real stdout to itself; anything else writing to fd 1 (the user's print(),
# a C library) is sent to stderr, which the app keeps for the details of an error.
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.stdout = sys.stderr
inp = sys.stdin.buffer


def widen_pipe(fd):
    """Fewer wake-ups per chunk of samples: the pipe holds a megabyte instead of 64 KiB (Linux)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or not a pipe: only more wake-ups


def frame(obj, payload=None):
    if payload is not None:
        obj["bytes"] = len(payload)
    line = (json.dumps(obj) + "\n").encode()
    return line + payload if payload is not None else line


def send(obj, payload=None):
    out.write(frame(obj, payload))
    out.flush()


class Failure(Exception):
    def __init__(self, kind, message, details=""):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details


def one_line(e):
    text = str(e).strip().splitlines()
    first = text[0].strip() if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def is_oom(e):
    name = type(e).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(e).lower()


torch = None
models = {}
classes = {}


def progress(stage):
    send({"type": "progress", "stage": stage})


def import_torch():
    global torch
    if torch is None:
        progress("importing torch")
        import torch as t
        torch = t
    return torch


def load_class(spec):
    if spec in classes:
        return classes[spec]
    where, sep, name = spec.rpartition(":")
    if not sep and spec.endswith(".py"):
        where, name = spec, None  # the one nn.Module class the file defines
    elif not sep or not where or not name:
        raise Failure("import", f"--model-class takes path/to/file.py:ClassName or package.module:ClassName, not {spec!r}")
    try:
        if where.endswith(".py") or os.sep in where or "/" in where:
            path = os.path.abspath(where)
            if not os.path.isfile(path):
                raise Failure("import", f"{where}: no such file")
            folder = os.path.dirname(path)
            if folder not in sys.path:
                sys.path.insert(0, folder)  # the model file may import its neighbours
            mod_name = os.path.splitext(os.path.basename(path))[0]
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except Failure:
        raise
    except BaseException as e:  # the user's module may raise anything, SystemExit included
        raise Failure("import", f"importing {where} failed: {one_line(e)}", traceback.format_exc())
    if name is None:
        t = import_torch()
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, t.nn.Module) and v.__module__ == module.__name__)
        if len(found) != 1:
            raise Failure("import", f"{where} defines {len(found)} nn.Module classes ({', '.join(found) or 'none'}); name one: {where}:ClassName")
        name = found[0]
    cls = getattr(module, name, None)
    if cls is None:
        raise Failure("import", f"{where} has no {name}")
    classes[spec] = cls
    return cls


def pick_state_dict(obj, path, file):
    for key in path:
        try:
            obj = obj[key]
        except Exception:
            raise Failure("state-dict", f"{file}: no {key!r} in the loaded object")
    if not isinstance(obj, dict):
        raise Failure("state-dict", f"{file}: the model's weights are a {type(obj).__name__}, not a state dict")
    return obj


def strip_prefixes(sd, prefixes):
    for p in prefixes:
        sd = type(sd)((k[len(p):] if isinstance(k, str) and k.startswith(p) else k, v) for k, v in sd.items())
    return sd


def device_name(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine() or "cpu"


def do_load(req):
    t = import_torch()
    dev_req = req.get("device") or ("cuda:0" if t.cuda.is_available() else "cpu")
    try:
        dev = t.device(dev_req)
        if dev.type == "cuda":
            if not t.cuda.is_available():
                raise Failure("device", f"--device {dev_req}: this torch ({t.__version__}) has no CUDA device available; pass --device cpu, or --python an interpreter whose torch has CUDA")
            if (dev.index or 0) >= t.cuda.device_count():
                raise Failure("device", f"--device {dev_req}: only {t.cuda.device_count()} CUDA device(s) are visible")
    except Failure:
        raise
    except Exception as e:
        raise Failure("device", f"--device {dev_req}: {one_line(e)}", traceback.format_exc())
    progress(f"importing {req['modelClass']}")
    cls = load_class(req["modelClass"])
    progress(f"constructing {cls.__name__}")
    try:
        model = cls(**(req.get("modelArgs") or {}))
    except BaseException as e:
        raise Failure("constructor", f"{cls.__name__}(**{json.dumps(req.get('modelArgs') or {})}) failed: {one_line(e)}", traceback.format_exc())
    progress(f"loading {os.path.basename(req['file'])}")
    try:
        obj = t.load(req["file"], weights_only=True, map_location=dev)
    except BaseException as e:
        if "weights only load failed" in str(e).lower():
            # torch/serialization.py `load`: the weights-only unpickler met something it does not allow
            why = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if "WeightsUnpickler error:" in str(e) else one_line(e)
            raise Failure("load", f"torch {t.__version__} refuses {os.path.basename(req['file'])} with weights_only=True ({why}); write its model state dict first: ckpt convert {req['file']} --unwrap", traceback.format_exc())
        kind = "oom" if is_oom(e) else "load"
        raise Failure(kind, f"torch.load({os.path.basename(req['file'])!r}, weights_only=True) failed: {one_line(e)}", traceback.format_exc())
    sd = strip_prefixes(pick_state_dict(obj, req.get("path") or [], req["file"]), req.get("strip") or [])
    try:
        model.load_state_dict(sd, strict=True)
    except BaseException as e:
        text = str(e)
        missing = text.count("Missing key") > 0
        unexpected = text.count("Unexpected key") > 0
        what = " and ".join(x for x, y in (("missing keys", missing), ("unexpected keys", unexpected)) if y) or "mismatched tensors"
        first = [line.strip() for line in text.splitlines() if line.strip()][1:2]
        raise Failure("state-dict", f"load_state_dict(strict=True) failed for {cls.__name__}: {what}{': ' + first[0] if first else ''}", traceback.format_exc())
    try:
        model.to(dev).eval()
    except BaseException as e:
        raise Failure("oom" if is_oom(e) else "device", f"moving {cls.__name__} to {dev} failed: {one_line(e)}", traceback.format_exc())
    models[req["label"]] = (model, dev)
    send({"type": "loaded", "label": req["label"], "keys": len(sd), "device": str(dev), "deviceName": device_name(dev), "sentAt": time.time()})


def read_payload(n):
    """The n bytes that follow a request line, read straight into a buffer of their own."""
    buf = bytearray(n)
    view = memoryview(buf)
    have = 0
    while have < n:
        got = inp.readinto(view[have:])
        if not got:
            raise Failure("protocol", f"stdin ended {n - have} bytes before the end of a chunk of samples")
        have += got
    return buf


def read_requests(inbox):
    """On a thread of its own: every request, a run's samples read in full, goes to `inbox` as it
    arrives, then None at the end of stdin (a Failure for a line that is not the protocol's). So
    the next chunk of samples crosses the pipe while the models compute this one (reading releases
    the GIL); read in turn, each chunk's transfer stalled the models, a fifth of the loop at CIFAR
    size. The app keeps at most two chunks in flight, which bounds what waits here."""
    try:
        for line in inp:
            try:
                req = json.loads(line)
            except ValueError:
                inbox.put(Failure("protocol", f"not a JSON line: {line[:80]!r}"))
                return
            if isinstance(req, dict) and "bytes" in req:
                req["payload"] = read_payload(int(req["bytes"]))
            inbox.put(req)
    except Failure as f:
        inbox.put(f)
        return
    except BaseException as e:
        inbox.put(Failure("protocol", f"reading stdin failed: {one_line(e)}", traceback.format_exc()))
        return
    inbox.put(None)


def samples_tensor(shape, payload):
    """A run's samples as a float32 tensor of `shape`, over the payload's own memory (no copy)."""
    want = 4
    for d in shape:
        want *= d
    if want != len(payload):
        raise Failure("protocol", f"a chunk of shape {shape} is {want} bytes, the request says {len(payload)}")
    if want == 0:
        return torch.empty(shape, dtype=torch.float32)
    return torch.frombuffer(payload, dtype=torch.float32).reshape(shape)


def logits_frame(label, model, dev, x, own_copy):
    """The model's logits for batch x, as a frame; `own_copy`: the forward gets a copy of x (one
    copy: the move to a CUDA device is one), so a forward that changes its input in place leaves
    x as it was for the next model."""
    try:
        x = x.to(dev, copy=own_copy)
        t0 = time.perf_counter()
        with torch.no_grad():
            y = model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
    except BaseException as e:
        raise Failure("oom" if is_oom(e) else "forward", f"{type(model).__name__}.forward on a batch of {x.shape[0]} failed: {one_line(e)}", traceback.format_exc())
    if isinstance(y, (tuple, list)) and y and torch.is_tensor(y[0]):
        y = y[0]
    if not torch.is_tensor(y) or y.dim() != 2 or y.shape[0] != x.shape[0]:
        got = list(y.shape) if torch.is_tensor(y) else type(y).__name__
        raise Failure("forward", f"{type(model).__name__}.forward returned {got}; verify scores N x classes logits")
    data = y.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return frame({"type": "logits", "label": label, "shape": list(y.shape), "seconds": seconds}, data)


held = []  # logits frames not yet written
began = None  # when the first run request began (time.perf_counter())


def write_held():
    if held:
        out.write(b"".join(held))
        out.flush()
        held.clear()


def do_run(req):
    global began
    shape = [int(x) for x in req["shape"]]
    batch = int(req.get("batch") or shape[0])
    if batch < 1:
        raise Failure("protocol", f"batch {batch}: a batch holds at least one sample")
    x_cpu = samples_tensor(shape, req.get("payload") or bytearray())
    runs = [(label, *models[label]) for label in req["labels"]]
    written = time.perf_counter()
    began = began or written
    try:
        for start in range(0, shape[0], batch):
            x = x_cpu[start : start + batch]
            for i, (label, model, dev) in enumerate(runs):
                held.append(logits_frame(label, model, dev, x, own_copy=i < len(runs) - 1))
            # The hold grows with the verification, up to OUT_HOLD_S: the first batch's logits
            # leave at once, then each write waits as long as the batches had taken before the
            # last one. So the app scores the first batches while the models compute the next (a
            # short test set leaves only its last batches to score after the last forward), for a
            # handful more wake-ups in all. (Writing every batch leaves less to score at the end,
            # but the app's scoring then runs beside every forward and slows them: measured on the
            # sample workspace (medians of 9), the forwards took 18% longer, more than the shorter end saved.)
            now = time.perf_counter()
            if now - written >= min(OUT_HOLD_S, written - began):
                write_held()
                written = time.perf_counter()
    finally:
        write_held()  # the batches done, before an error about the next


def main():
    widen_pipe(inp.fileno())
    widen_pipe(out.fileno())
    requests = queue.SimpleQueue()
    threading.Thread(target=read_requests, args=(requests,), name="read-requests", daemon=True).start()
    while True:
        req = requests.get()
        if req is None:
            return 0
        try:
            if isinstance(req, Failure):
                raise req
            op = req.get("op") if isinstance(req, dict) else None
            if op == "hello":
                if req.get("protocol") != PROTOCOL:
                    raise Failure("protocol", f"the app speaks protocol {req.get('protocol')}, this runner {PROTOCOL}")
                t = import_torch()
                cuda = [t.cuda.get_device_name(i) for i in range(t.cuda.device_count())] if t.cuda.is_available() else []
                send({"type": "hello", "protocol": PROTOCOL, "python": platform.python_version(), "executable": sys.executable, "torch": t.__version__, "cuda": cuda, "sentAt": time.time()})
            elif op == "load":
                do_load(req)
            elif op == "run":
                do_run(req)
            elif op == "exit":
                return 0
            else:
                raise Failure("protocol", f"unknown request {op!r}")
        except Failure as f:
            send({"type": "error", "kind": f.kind, "message": f.message, "details": f.details})
            if f.kind == "protocol":
                return 2
        except BaseException as e:
            send({"type": "error", "kind": "oom" if is_oom(e) else "internal", "message": one_line(e), "details": traceback.format_exc()})


if __name__ == "__main__":
    code = main()
    out.flush()
    sys.stderr.flush()
    # Straight out, without the interpreter's finalization: nothing is left to write, torch's
    # teardown costs a third of a second, and the reader thread may still be blocked on stdin.
    os._exit(code)
