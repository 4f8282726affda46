"""Build the wheel and the sdist, check what the wheel holds, and smoke-test both.

    python .ci/check_package.py

Each artifact is installed into a fresh virtual environment and exercised from
a folder outside the source tree, so that what runs is the installed package:
first bare (the engine, a trace, the renders; what needs an extra says so), then
with its extras ``[arrays,nn]`` (grouped traces and the main job too).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import venv
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

SMOKE = r"""
import pathlib, subprocess, sys, tempfile
import autodiff, nn
from autodiff import Value, grad, trace
from autodiff.render import explorer
here = pathlib.Path(autodiff.__file__).resolve()
assert "site-packages" in str(here), here  # the installed package, not the source tree
x = Value(2.0, "x")
y = (x * x).tanh() + x.sqrt()
y.backward()
import math
assert abs(x.grad - (4 * (1 - math.tanh(4.0) ** 2) + 0.5 / math.sqrt(2.0))) < 1e-12
traced = trace(lambda v: v[0] * v[1], [2.0, 3.0], mode="groups")
assert traced.value_and_grad([2.0, 3.0]) == (6.0, [3.0, 2.0])
assert "<svg" in explorer(y).html and autodiff.__version__
model = nn.MLP(2, [4, 1], seed=0)
with tempfile.TemporaryDirectory() as d:
    nn.save(pathlib.Path(d, "m.json"), model)
    run = subprocess.run([sys.executable, "-m", "nn.xor", "--out", d, "--steps", "60"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.splitlines()[-1] == "accuracy: 4/4", run
    assert pathlib.Path(d, "backprop.html").stat().st_size > 10_000
    assert pathlib.Path(d, "layers.html").stat().st_size > 10_000  # nn's own page assets
print("smoke test passed:", autodiff.__version__, here.parent)
"""


BARE = r"""
import pathlib, subprocess, sys
import autodiff, autodiff.render, nn
from autodiff import Value, trace
from autodiff.extras import MissingExtraError
from autodiff.render import explorer
for module in ("numpy", "matplotlib", "tqdm", "array_api_compat"):
    try:
        __import__(module)
    except ImportError:
        continue
    raise AssertionError(f"{module} came with the bare install")
x = Value(2.0, "x")
y = (x * x).tanh()
y.backward()
assert trace(lambda v: v[0] * v[1], [2.0, 3.0]).value_and_grad([2.0, 3.0]) == (6.0, [3.0, 2.0])
assert "<svg" in explorer(y).html
try:
    trace(lambda v: v[0] * v[1], [2.0, 3.0], mode="groups")
    raise AssertionError("grouped code without numpy")
except MissingExtraError as e:
    assert "scalar-autodiff[arrays]" in str(e), e
run = subprocess.run([sys.executable, "-m", "nn.xor"], capture_output=True, text=True)
assert run.returncode == 2 and "scalar-autodiff[nn]" in run.stderr, run
assert len(run.stderr.strip().splitlines()) == 1, run.stderr
print("bare install: the engine, traces and renders work; the rest names its extra")
"""


def check_wheel(wheel: pathlib.Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "autodiff/py.typed",
        "nn/py.typed",
        "autodiff/render/assets/explorer.js",
        "autodiff/render/assets/explorer.css",
        "autodiff/render/style.py",
        "nn/assets/layers.html",
        "nn/assets/layers.js",
        "nn/assets/layers.css",
        "autodiff/trace/_grouped.py",
        "autodiff/trace/_program.py",
        "autodiff/extras.py",
        "autodiff/files.py",
        "nn/compiled.py",
    ):
        assert needed in names, f"{needed} is missing from {wheel.name}"
    for name in names:
        top = name.split("/")[0]
        assert top in ("autodiff", "nn") or top.endswith(".dist-info"), f"{name} in the wheel"
    license_ = [n for n in names if n.endswith("LICENSE")]
    assert license_, "no LICENSE in the wheel"
    print(f"{wheel.name}: {len(names)} files, py.typed and assets, no tests or benchmarks")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        dist = pathlib.Path(tmp, "dist")
        built = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            print(built.stdout, built.stderr, sep="\n")
            return 1
        wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
        assert len(wheels) == len(sdists) == 1, list(dist.iterdir())
        check_wheel(wheels[0])
        for artifact in (wheels[0], sdists[0]):
            env = pathlib.Path(tmp, f"venv-{artifact.suffix.strip('.')}")
            venv.create(env, with_pip=True)
            python = env / "bin" / "python"
            pip = [str(python), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, str(artifact)], check=True)  # no extra
            subprocess.run([str(python), "-c", BARE], check=True, cwd=tmp)
            subprocess.run([*pip, f"{artifact}[arrays,nn]"], check=True)
            subprocess.run([str(python), "-c", SMOKE], check=True, cwd=tmp)
            print(f"{artifact.name}: installs in a fresh venv, bare and with its extras")
    return 0


if __name__ == "__main__":
    sys.exit(main())
