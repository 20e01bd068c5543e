"""Harvests fickling's own test samples (trailofbits/fickling, test/*.py) into OUT_DIR without
committing them: runs fickling's analysing unit tests (not those that unpickle) from a checkout of its repository with
`check_safety` / `scan_file` wrapped so that every pickle a test hands them is written out.

    python fickling_samples.py FICKLING_CHECKOUT OUT_DIR

Label of a sample: `malicious` when the (passing) test's own check rates it above
Severity.LIKELY_SAFE, `benign` when at or below: what fickling's tests assert about it.
Liveness: each malicious sample is unpickled with pickle.loads in a subprocess whose audit hook
(sys.addaudithook) raises at the first side-effecting event (process, exec/compile, code objects,
file write, network, ctypes...), so no payload runs; `live` means it reached one. Importing a
module alone does not count (a GLOBAL of `macos.system` imports and fails without running anything).
Writes OUT_DIR/labels.json: [{file, test, label, live}].
"""
import json
import os
import subprocess
import sys
import unittest

repo, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo)
os.makedirs(out, exist_ok=True)

from fickling import analysis, loader  # noqa: E402
from fickling.analysis import Severity  # noqa: E402
from fickling.fickle import Pickled  # noqa: E402

# check_safety gets a parsed Pickled; its dumps() re-serialises, which rewrites malformed structure
# (a frame length that splits an opcode comes back fixed). Keep the bytes each Pickled was parsed
# from, and write those while its opcodes are unchanged.
real_pickled_load = Pickled.load


def pickled_load(pickled, *a, **kw):
    p = real_pickled_load(pickled, *a, **kw)
    if isinstance(pickled, (bytes, bytearray, memoryview)):
        p._ckpt_raw = (bytes(pickled), tuple(map(id, p)))
    return p


Pickled.load = staticmethod(pickled_load)

samples = []
current = {"test": ""}


def keep(data, severity):
    name = f"{len(samples):03d}_{current['test'].split('.')[-1]}.pkl"
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    samples.append({"file": name, "test": current["test"], "severity": severity.name, "flagged": severity > Severity.LIKELY_SAFE})


real_check = analysis.check_safety
real_scan = loader.scan_file


def check_safety(pickled, *a, **kw):
    r = real_check(pickled, *a, **kw)
    try:
        raw, ops = getattr(pickled, "_ckpt_raw", (None, None))
        # a test that edits the opcodes after parsing (insert_python_eval, a second Proto) gets its edit
        keep(raw if raw is not None and tuple(map(id, pickled)) == ops else pickled.dumps(), r.severity)
    except Exception:  # noqa: BLE001 - a sample fickling itself cannot re-serialise is skipped
        pass
    return r


def scan_file(path, *a, **kw):
    r = real_scan(path, *a, **kw)
    try:
        with open(path, "rb") as f:
            keep(f.read(), r.severity)
    except Exception:  # noqa: BLE001
        pass
    return r


LIVE = r"""
import sys, pickle
SENSITIVE = ('os.system', 'os.exec', 'os.spawn', 'os.posix_spawn', 'os.fork', 'os.kill', 'os.remove', 'os.rename', 'os.rmdir', 'os.mkdir', 'os.chmod',
  'os.putenv', 'os.unsetenv', 'os.truncate', 'subprocess.Popen', 'exec', 'compile', 'socket.', 'ctypes.', 'shutil.', 'webbrowser.', 'urllib.',
  'code.__new__', 'function.__new__', 'marshal.loads', 'pty.', 'sys._getframe', 'object.__setattr__', 'builtins.input', 'cpython.run_')
class Payload(Exception): pass
def hook(event, args):
    if event == 'open' and len(args) > 1 and args[1] and any(c in str(args[1]) for c in 'wax+'): raise Payload(event)
    if event.startswith(SENSITIVE): raise Payload(event)
data = open(sys.argv[1], 'rb').read()
sys.addaudithook(hook)
try:
    pickle.loads(data)
except Payload as e:
    print('LIVE', e); sys.exit(0)
except BaseException:
    pass
print('DEAD')
"""


def live(path):
    try:
        r = subprocess.run([sys.executable, "-I", "-c", LIVE, path], capture_output=True, text=True, timeout=30, cwd=out)
        return r.stdout.startswith("LIVE")
    except subprocess.TimeoutExpired:
        return False


suite = unittest.defaultTestLoader.discover(os.path.join(repo, "test"), top_level_dir=repo)
for mod in list(sys.modules.values()):
    if getattr(mod, "__name__", "").startswith("test.") and hasattr(mod, "check_safety"):
        mod.check_safety = check_safety
    if getattr(mod, "__name__", "").startswith("test.") and hasattr(mod, "scan_file"):
        mod.scan_file = scan_file
analysis.check_safety = check_safety


def each(s):
    for t in s:
        if isinstance(t, unittest.TestSuite):
            yield from each(t)
        else:
            yield t


# only the modules that analyse pickles; test_hook, test_loads_api and test_context unpickle theirs
ANALYSING = ("test.test_bypasses", "test.test_analysis", "test.test_scan_api", "test.test_expansion_attack_analysis", "test.test_scanner_deactivation_analysis", "test.test_pickle", "test.test_polyglot", "test.test_pytorch", "test.test_crashes")
for t in each(suite):
    if not t.id().startswith(ANALYSING):
        continue
    current["test"] = t.id()
    before = len(samples)
    result = unittest.TestResult()
    t.run(result)
    if not result.wasSuccessful():  # a failing (or erroring) test asserts nothing we can use
        for s in samples[before:]:
            os.remove(os.path.join(out, s["file"]))
        del samples[before:]

labels = []
for s in samples:
    label = "malicious" if s["flagged"] else "benign"
    labels.append({"file": s["file"], "test": s["test"], "label": label, "live": live(os.path.join(out, s["file"])) if label == "malicious" else False})
with open(os.path.join(out, "labels.json"), "w") as f:
    json.dump(labels, f, indent=1)
print(f"{len(labels)} samples: {sum(l['label'] == 'malicious' for l in labels)} malicious ({sum(l['live'] for l in labels)} live), {sum(l['label'] == 'benign' for l in labels)} benign")
