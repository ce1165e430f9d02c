"""The Python API (issue: the run layer): the README's loop runs, ``minivae.load_run`` gives a run
back whole, ``state_dict`` moves weights to PyTorch, and no module imports a layer above its own."""
import ast
import json
import pathlib
import re

import numpy as np
import pytest

import minivae
from minivae.train.__main__ import main as train_main

from run_helpers import ROOT, TINY


def _readme_python_block():
    text = pathlib.Path(ROOT, "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_training_loop_runs_and_learns(capsys):
    code = _readme_python_block()
    assert len(code.strip().splitlines()) <= 15
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    gamma = namespace["objective"].decoder_variance()
    mse = namespace["terms"]["mse"]
    assert f"γ {gamma:.4f}" in printed
    # one epoch of balanced γ: γ tracks the MSE from above (it starts at 1 and can only fall)
    assert mse < gamma < 1.0


def test_lazy_subpackages_and_load_run(tmp_path):
    for name in ("nn", "optim", "vae", "data", "run", "train"):
        assert getattr(minivae, name).__name__ == f"minivae.{name}"
    with pytest.raises(AttributeError):
        minivae.nope
    out = tmp_path / "run"
    assert train_main(TINY + ["--epochs", "1", "--objective", "learned-gamma", "--out", str(out)]) == 0
    run = minivae.load_run(out)
    assert run.config.objective_name == "learned-gamma" and run.config.model.hidden == [16]
    assert not run.model.training
    saved = np.load(out / "checkpoint.npz")
    log_gamma = json.loads(str(saved["objective/__json__"]))["log_gamma"]
    assert run.objective.state()["log_gamma"] == log_gamma != 0.0          # trained, then restored
    assert run.gamma == pytest.approx(np.exp(log_gamma))
    state = run.model.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    assert np.array_equal(state["encoder.1.weight"], saved["model/encoder/1/weight"])


def test_state_dict_moves_weights_to_pytorch_in_two_lines(tmp_path):
    torch = pytest.importorskip("torch")
    from minivae import Tensor, backend, vae
    backend.use("numpy", dtype="float32", seed=0)
    model = vae.build_model(None, kind="dense", input_shape=(1, 4, 4), hidden=(8,), latent_dim=2)
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU())
    state = {k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items() if k.startswith("encoder.")}
    t.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()})
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype("float32")
    ours = model.encoder(Tensor(x)).data
    np.testing.assert_allclose(t(torch.from_numpy(x)).detach().numpy(), ours, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------- the layers
# design.md: backend < autograd < ops < nn/optim/checkpoint < data < vae < fixedpoint < run < commands
LAYER = [("minivae.__version__", 0), ("minivae.backend", 0), ("minivae.fileio", 0), ("minivae.settings", 0), ("minivae.autograd", 1),
         ("minivae.ops", 2), ("minivae.nn", 3), ("minivae.optim", 3), ("minivae.checkpoint", 3),
         ("minivae.gradcheck", 3), ("minivae.imageio", 3), ("minivae.data", 3), ("minivae.vae", 4),
         ("minivae.twostage", 4), ("minivae.classifier.__main__", 7), ("minivae.classifier", 4),
         ("minivae.plots", 5), ("minivae.fixedpoint.__main__", 7), ("minivae.fixedpoint", 5),
         ("minivae.run", 6), ("minivae.train", 7), ("minivae.sample", 7), ("minivae.diagnose", 7),
         ("minivae.evaluate", 7), ("minivae.reproduce", 7), ("minivae", 8)]
COMMANDS = ("minivae.train", "minivae.sample", "minivae.diagnose", "minivae.evaluate",
            "minivae.classifier.__main__", "minivae.fixedpoint.__main__", "minivae.reproduce")


def _layer(module):
    for prefix, layer in LAYER:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    raise AssertionError(f"{module} has no layer in this table")


def _imports(path, module):
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[:len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            yield from names
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minivae"):
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("minivae"))


def test_no_module_imports_a_layer_above_it_and_no_command_imports_another():
    problems = []
    root = pathlib.Path(ROOT, "minivae")
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if module == "minivae":
            continue
        own_prefix, own = _layer(module)
        for target in _imports(path, module):
            if target == "minivae" or target.startswith(own_prefix):
                continue
            prefix, layer = _layer(target)
            if layer > own:
                problems.append(f"{module} (layer {own}) imports {target} (layer {layer})")
            if own == 7 and layer == 7:
                problems.append(f"command {module} imports command {target}")
    assert problems == []


def test_no_file_is_past_about_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in pathlib.Path(ROOT, "minivae").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}
