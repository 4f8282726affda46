"""State dicts and files: what loading refuses, what saving writes, bit for bit."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import struct

import pytest
from threads import run_together

from nn import load, save
from nn.module import MLP
from nn.optim import SGD, Adam


def bits(xs) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]


def dump(obj) -> str:
    """A state as text: json writes floats with repr, so −0.0 is not 0.0 here."""
    return json.dumps(obj, sort_keys=True)


def trained(seed: int = 0) -> tuple[MLP, Adam, SGD]:
    model = MLP(2, [3, 1], seed=seed)
    adam = Adam(model.parameters(), lr=0.01)
    sgd = SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = (model([1.0, -2.0]) - 0.5) ** 2  # type: ignore[operator]
        adam.zero_grad()
        loss.backward()
        adam.step()
        sgd.step()
    return model, adam, sgd


# -- 1. optimizer state is validated on load as on construction --------------------------------


ADAM_BAD = [
    ("lr", -0.1, ValueError, r"'lr' must be a positive, finite number, got -0.1"),
    ("lr", math.nan, ValueError, r"'lr' must be a positive, finite number, got nan"),
    ("lr", math.inf, ValueError, r"'lr' must be a positive, finite"),
    ("lr", 0, ValueError, r"'lr' must be a positive"),
    ("lr", 10**400, ValueError, r"'lr' must fit a float"),
    ("lr", "0.1", TypeError, r"'lr' must be a real number, got str"),
    ("eps", 0.0, ValueError, r"'eps' must be a positive, finite number"),
    ("eps", -1e-8, ValueError, r"'eps' must be a positive"),
    ("eps", math.nan, ValueError, r"'eps' must be a positive"),
    ("betas", [0.9, 1.0], ValueError, r"'betas'\[1\] must be in \[0, 1\)"),
    ("betas", [0.9], ValueError, r"'betas' must be two numbers"),
    ("t", True, ValueError, r"'t' must be a step count"),
    ("t", -1, ValueError, r"'t' must be a step count"),
    ("m", "x", ValueError, r"'m' must list 13 numbers, got str"),
    ("m", [0.0] * 8, ValueError, r"'m' must list 13 numbers, got 8"),
    ("type", "SGD", ValueError, r"the state is of a 'SGD' optimizer"),
]


@pytest.mark.parametrize(("key", "bad", "error", "match"), ADAM_BAD)
def test_adam_load_state_dict_refuses_what_the_constructor_refuses(key, bad, error, match):
    _, adam, _ = trained()
    state = adam.state_dict()
    before = dump(adam.state_dict())
    state[key] = bad
    with pytest.raises(error, match=match):
        adam.load_state_dict(state)
    assert dump(adam.state_dict()) == before  # nothing changed


@pytest.mark.parametrize(
    ("key", "index", "bad", "match"),
    [
        ("v", 4, -1e-12, r"'v'\[4\] must be a finite number ≥ 0, got -1e-12"),
        ("v", 0, math.nan, r"'v'\[0\] must be a finite number ≥ 0, got nan"),
        ("v", 1, math.inf, r"'v'\[1\] must be a finite number ≥ 0"),
        ("m", 2, math.inf, r"'m'\[2\] must be a finite number, got inf"),
        ("m", 3, 10**400, r"'m'\[3\] must fit a float"),
        ("m", 3, None, r"'m'\[3\] must be a real number, got NoneType"),
    ],
)
def test_adam_buffers_are_checked_entry_by_entry(key, index, bad, match):
    model, adam, _ = trained()
    state = adam.state_dict()
    state[key][index] = bad
    before = dump(adam.state_dict())
    with pytest.raises((ValueError, TypeError), match=match):
        adam.load_state_dict(state)
    assert dump(adam.state_dict()) == before
    adam.step()  # and still steps (a negative second moment once killed it: √v)
    assert all(math.isfinite(p.data) for p in model.parameters())


@pytest.mark.parametrize(
    ("key", "bad", "match"),
    [
        ("lr", -1.0, r"SGD.load_state_dict: 'lr' must be a positive, finite number"),
        ("momentum", 1.0, r"'momentum' must be in \[0, 1\)"),
        ("momentum", math.nan, r"'momentum' must be in \[0, 1\)"),
        ("velocity", [math.inf] + [0.0] * 12, r"'velocity'\[0\] must be a finite number"),
    ],
)
def test_sgd_load_state_dict_checks_settings_and_velocity(key, bad, match):
    _, _, sgd = trained()
    state = sgd.state_dict()
    state[key] = bad
    before = dump(sgd.state_dict())
    with pytest.raises(ValueError, match=match):
        sgd.load_state_dict(state)
    assert dump(sgd.state_dict()) == before


def test_an_optimizer_state_of_the_wrong_shape_is_refused_naming_what_is_wrong():
    _, adam, sgd = trained()
    for opt in (adam, sgd):
        name = type(opt).__name__
        before = dump(opt.state_dict())
        with pytest.raises(TypeError, match=f"{name}.load_state_dict: expected a dict, got list"):
            opt.load_state_dict([("lr", 0.1)])
        state = opt.state_dict()
        del state["lr"]
        state["extra"] = 1.0
        with pytest.raises(
            ValueError, match=r"missing entries \['lr'\], unexpected entries \['extra'\]"
        ):
            opt.load_state_dict(state)
        assert dump(opt.state_dict()) == before


# -- 1. hostile files --------------------------------------------------------------------------


def saved(tmp_path, model, opt=None) -> tuple[str, dict]:
    path = save(tmp_path / "m.json", model, opt)
    return path, json.loads(open(path, encoding="utf-8").read())


def write(path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _scalar_key(doc: dict) -> str:
    """A model entry that holds one number (a bias)."""
    return next(k for k, v in doc["model"]["state"].items() if not isinstance(v, list))


def hostile_documents(doc: dict) -> list[tuple[str, str, type, str]]:
    """(what, file text, error, message) for files a peer might be handed."""
    key = _scalar_key(doc)
    out = [
        ("deep nesting", "[" * 200_000 + "]" * 200_000, ValueError, "nested too deeply"),
        ("deep object", '{"a":' * 200_000 + "1" + "}" * 200_000, ValueError, "nested too deeply"),
        ("not JSON", "{'format': 1}", ValueError, "not a readable JSON file"),
        ("a list", "[1, 2]", ValueError, "is not an autodiff-nn file"),
        ("an empty file", "", ValueError, "not a readable JSON file"),
        (
            "a huge literal",
            json.dumps(doc).replace(json.dumps(doc["model"]["state"][key]), "1e400", 1),
            ValueError,
            "too large for a float",
        ),
    ]
    for what, path, value, error, match in [
        ("model is a list", ("model",), [], TypeError, r"'model' must be a JSON object, got list"),
        ("model is null", ("model",), None, TypeError, r"'model' must be a JSON object"),
        ("state is a string", ("model", "state"), "x", TypeError, r"'model.state' must be a JSON"),
        ("optimizer is a number", ("optimizer",), 3, TypeError, r"'optimizer' must be a JSON"),
        ("version is a string", ("version",), "1", ValueError, "unsupported version '1'"),
        ("version is true", ("version",), True, ValueError, "unsupported version True"),
        ("class is a list", ("model", "class"), ["MLP"], ValueError, r"holds a \['MLP'\]"),
        (
            "an entry of 10**400",
            ("model", "state", key),
            10**400,
            ValueError,
            rf"'{key}'.* does not fit a float",
        ),
        (
            "a nested entry",
            ("model", "state", key),
            [[1.0]],
            TypeError,
            rf"'{key}'.* expected a real number, got list",
        ),
        (
            "a string entry",
            ("model", "state", key),
            "one",
            TypeError,
            rf"'{key}'.* expected a real number, got str",
        ),
        ("a bool entry", ("model", "state", key), True, (TypeError, ValueError), rf"'{key}'"),
        (
            "an object entry",
            ("model", "state", key),
            {"a": 1},
            (TypeError, ValueError),
            rf"'{key}'",
        ),
        ("an lr of 'inf'", ("optimizer", "lr"), "inf", ValueError, r"'lr' must be a positive"),
        (
            "a negative second moment",
            ("optimizer", "v"),
            [-1.0] * 13,
            ValueError,
            r"'v'\[0\] must be a finite number ≥ 0",
        ),
    ]:
        d = json.loads(json.dumps(doc))
        target = d
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
        out.append((what, json.dumps(d), error, match))
    twice = json.dumps(doc)[:-1] + ', "version": 1}'
    out.append(("a name given twice", twice, ValueError, "'version' appears twice"))
    # an int of 5,001 digits, written by hand: Python 3.11+ refuses to read one that long,
    # 3.10 reads it, and then it does not fit a float: a ValueError either way
    huge = json.dumps(doc).replace(json.dumps(doc["model"]["state"][key]), "1" + "0" * 5000, 1)
    out.append(("an entry of 10**5000", huge, ValueError, "not a readable JSON|not fit a float"))
    return out


def test_hostile_files_get_clear_errors_and_change_nothing(tmp_path):
    model, adam, _ = trained()
    path, doc = saved(tmp_path, model, adam)
    before = dump(model.state_dict()), dump(adam.state_dict())
    cases = hostile_documents(doc)
    for what, text, error, match in cases:
        hostile = tmp_path / "hostile.json"
        write(hostile, text)
        with pytest.raises(error, match=match):
            load(hostile, model, adam)
        assert (dump(model.state_dict()), dump(adam.state_dict())) == before, what
    assert len(cases) >= 20
    load(path, model, adam)  # the good file still loads


# -- 2. standard files ---------------------------------------------------------------------------


def test_saved_files_are_standard_json_and_round_trip_every_float_exactly(tmp_path):
    model = MLP(2, [2, 1], seed=0)
    specials = [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308]
    params = model.parameters()
    for p, x in zip(params, specials):
        p.data = x
    path = save(tmp_path / "m.json", model)
    text = open(path, encoding="utf-8").read()

    def refuse(name):
        raise AssertionError(f"not standard JSON: {name}")

    json.loads(text, parse_constant=refuse)  # no bare NaN or Infinity
    assert '"nan"' in text and '"-nan"' in text and '"-inf"' in text and "-0.0" in text
    twin = MLP(2, [2, 1], seed=1)
    load(path, twin)
    assert bits([p.data for p in twin.parameters()]) == bits([p.data for p in params])


def test_files_written_by_older_versions_with_bare_nan_still_load(tmp_path):
    model = MLP(2, [1], seed=0)
    state = {k: math.nan for k in model.state_dict()} | {"layers.0.neurons.0.w": [math.inf, 1.0]}
    doc = {"format": "autodiff-nn", "version": 1, "model": {"class": "MLP", "state": state}}
    write(tmp_path / "old.json", json.dumps(doc))  # NaN, Infinity: Python's old default
    load(tmp_path / "old.json", model)
    assert math.isnan(model.layers[0].neurons[0].b.data)


def test_a_new_file_gets_open_s_mode_and_an_existing_file_keeps_its_own(tmp_path):
    model = MLP(2, [1], seed=0)
    umask = os.umask(0o022)
    try:
        os.umask(0o027)
        path = save(tmp_path / "new.json", model)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # 0666 less the umask
        with open(tmp_path / "by_open.json", "w"):
            pass
        assert stat.S_IMODE(os.stat(tmp_path / "by_open.json").st_mode) == 0o640
        write(tmp_path / "old.json", "{}")
        os.chmod(tmp_path / "old.json", 0o604)
        save(tmp_path / "old.json", model)
        assert stat.S_IMODE(os.stat(tmp_path / "old.json").st_mode) == 0o604
    finally:
        os.umask(umask)
    assert sorted(os.listdir(tmp_path)) == ["by_open.json", "new.json", "old.json"]


def test_writes_stay_atomic_on_failure_and_under_concurrent_saves(tmp_path, monkeypatch):
    model = MLP(2, [4, 1], seed=0)
    path = save(tmp_path / "m.json", model)
    good = open(path, encoding="utf-8").read()

    def fail(*args):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", fail)
        with pytest.raises(OSError, match="disk full"):
            save(path, MLP(2, [4, 1], seed=1))
    assert open(path, encoding="utf-8").read() == good
    assert os.listdir(tmp_path) == ["m.json"]  # no temporary file left behind
    models = [MLP(2, [4, 1], seed=s) for s in range(8)]
    assert run_together([lambda m=m: save(path, m) for m in models]) == []
    twin = MLP(2, [4, 1], seed=99)
    load(path, twin)  # one of the eight, whole
    assert any(dump(twin.state_dict()) == dump(m.state_dict()) for m in models)
    assert os.listdir(tmp_path) == ["m.json"]


# -- every file whole or absent -----------------------------------------------------------
# Each kind of file the library writes, interrupted half-way (Ctrl-C, a full disk): the
# earlier file stays as it was (or no file appears), and no temporary file is left.

INTERRUPTS = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "ENOSPC": lambda: OSError(errno.ENOSPC, "No space left on device"),
}


class _HalfWriter:
    """A file object that writes half of what it is given, then raises."""

    def __init__(self, f, boom):
        self.f, self.boom = f, boom

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise self.boom()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _kinds(tmp_path, monkeypatch, boom):
    """(name, suffix, write(path)) for each kind of file, with the interruption planted in
    the writer it goes through."""
    import builtins

    import matplotlib.figure
    from PIL import Image

    from autodiff import Value, files
    from autodiff.render import explorer, forward_graph
    from autodiff.render import save as render_save
    from nn import plots

    real_open = builtins.open

    def half_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return _HalfWriter(f, boom) if "w" in mode else f

    def half_savefig(fig, path, **kwargs):  # matplotlib writes by name: half a PNG
        with real_open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        raise boom()

    def half_gif(image, path, **kwargs):
        with real_open(path, "wb") as f:
            f.write(b"GIF89a" + b"\0" * 100)
        raise boom()

    x = Value(0.5, "x")
    y = (x * x).tanh()
    model = MLP(2, [3, 1], seed=0)
    frames = [(1, 0.5, lambda p: 0.5, [[0.0, 1.0], [1.0, 0.0]], ([1.0, -1.0], 0.0, 0.0))]
    return {
        "svg": (lambda p: render_save(forward_graph(y), p), "open"),
        "png-graph": (lambda p: render_save(forward_graph(y), p), "open"),
        "html": (lambda p: explorer(y).save(p), "open"),
        "json": (lambda p: save(p, model), "open"),
        "png": (
            lambda p: plots.decision_boundary(lambda q: 0.5, [[0, 0], [1, 1]], [0, 1], p),
            "savefig",
        ),
        "gif": (
            lambda p: plots.training_animation(frames, [[0, 0], [1, 1]], [0, 1], p, progress=False),
            "gif",
        ),
    }, {
        "open": lambda: monkeypatch.setattr(files, "open", half_open, raising=False),
        "savefig": lambda: monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_savefig),
        "gif": lambda: monkeypatch.setattr(Image.Image, "save", half_gif),
    }


SUFFIX = {
    "svg": ".svg",
    "png-graph": ".png",
    "html": ".html",
    "json": ".json",
    "png": ".png",
    "gif": ".gif",
}


@pytest.mark.parametrize("interrupt", sorted(INTERRUPTS))
@pytest.mark.parametrize("kind", sorted(SUFFIX))
@pytest.mark.parametrize("earlier", [True, False], ids=["over an earlier file", "new file"])
def test_an_interrupted_write_leaves_the_earlier_file_or_none(
    tmp_path, monkeypatch, kind, interrupt, earlier
):
    boom = INTERRUPTS[interrupt]
    writers, plant = _kinds(tmp_path, monkeypatch, boom)
    write, where = writers[kind]
    path = tmp_path / f"out{SUFFIX[kind]}"
    write(path)  # a whole file first: the writer works
    whole = path.read_bytes()
    assert len(whole) > 100
    if not earlier:
        path.unlink()
    plant[where]()
    expected = KeyboardInterrupt if interrupt == "KeyboardInterrupt" else OSError
    with pytest.raises(expected):
        write(path)
    if earlier:
        assert path.read_bytes() == whole  # the earlier file, untouched
    else:
        assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([path.name] if earlier else [])


def test_the_error_of_a_failed_write_names_the_file_asked_for(tmp_path):
    from autodiff.files import write_file

    (tmp_path / "page.html").mkdir()  # a folder where the file goes
    with pytest.raises(IsADirectoryError) as info:
        write_file(tmp_path / "page.html", "<html>")
    assert info.value.filename == str(tmp_path / "page.html")
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]
