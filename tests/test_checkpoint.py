"""Checkpoints: bit-exact round trips, the key layout, atomic writes, and every refusal."""
import json
import os

import numpy as np
import pytest

from minivae import Tensor, backend, nn, ops
from minivae.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from minivae.optim import SGD, Adam


def host(a):
    return backend.to_host(a)


class WithBuffer(nn.Module):
    """A small model with a sub-module list and a registered buffer (like BatchNorm's running mean)."""

    def __init__(self, width=4):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))
        self.register_buffer("running_mean", backend.xp().zeros(2, dtype=backend.default_dtype()))

    def forward(self, x):
        return self.encoder(x)


def train(model, opt, x, steps):
    for _ in range(steps):
        opt.zero_grad()
        ops.mean(ops.square(model(x) - 1.0)).backward()
        opt.step()


def setup_trained(seed=0):
    backend.manual_seed(seed)
    model = WithBuffer()
    model.running_mean[...] = backend.xp().asarray([0.25, -1.5])
    opt = Adam(model, lr=0.01, weight_decay=1e-3)
    x = Tensor(backend.rng().standard_normal((8, 3)).astype(backend.default_dtype()))
    train(model, opt, x, 3)
    return model, opt, x


OBJECTIVE = {"gamma": 0.123456789012345, "lambda": np.float64(2.5), "step": 7, "C_ma": None,
             "history": np.array([1.0, 0.5, 0.25]), "geco": {"kappa": 0.1, "ema": np.array(3.0)}}


# ------------------------------------------------------------------ round trip

def test_round_trip_is_bit_exact(xp, tmp_path):
    model, opt, x = setup_trained()
    path = tmp_path / "checkpoint.npz"
    config = {"model": "dense", "hidden": [256, 64], "lr": 1e-3, "name": "β-run"}
    save_checkpoint(path, model, opt, config=config, step=300, epoch=2, objective_state=OBJECTIVE,
                    extra_json={"note": "x"}, extra_arrays={"mu_mean": np.arange(4.0)})

    backend.manual_seed(99)               # a fresh model and optimiser, different values
    twin = WithBuffer()
    twin_opt = Adam(twin, lr=0.5)
    flat_before = twin_opt.flat_params
    ckpt = load_checkpoint(path, twin, twin_opt)

    for (name, a), (_, b) in zip(model.state_dict().items(), twin.state_dict().items()):
        assert np.array_equal(host(a), host(b)), name
    assert host(twin.running_mean).tolist() == [0.25, -1.5]
    assert np.array_equal(host(opt.m), host(twin_opt.m)) and np.array_equal(host(opt.v), host(twin_opt.v))
    assert twin_opt.t == 3 and twin_opt.lr == 0.01 and twin_opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert twin_opt.flat_params is flat_before and xp.shares_memory(twin.encoder[0].weight.data, flat_before)
    assert ckpt.config == config and ckpt.step == 300 and ckpt.epoch == 2
    assert ckpt.extra_json == {"note": "x"} and ckpt.extra_arrays["mu_mean"].tolist() == [0, 1, 2, 3]
    obj = ckpt.objective_state
    assert obj["gamma"] == OBJECTIVE["gamma"] and obj["lambda"] == 2.5 and obj["step"] == 7
    assert obj["C_ma"] is None and obj["geco"]["kappa"] == 0.1
    assert obj["history"].tolist() == [1.0, 0.5, 0.25] and float(obj["geco"]["ema"]) == 3.0

    # resuming gives the same parameters as training straight through
    train(model, opt, x, 2)
    train(twin, twin_opt, x, 2)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(host(a.data), host(b.data))


def test_rng_state_round_trip(tmp_path):
    backend.use("numpy", dtype="float64", seed=5)
    backend.rng().standard_normal(10)     # advance the generator past its seed
    path = tmp_path / "c.npz"
    save_checkpoint(path, WithBuffer())
    after_save = backend.rng().standard_normal(6)
    backend.rng().standard_normal(100)    # wander off
    ckpt = load_checkpoint(path, restore_rng=True)
    assert np.array_equal(backend.rng().standard_normal(6), after_save)
    backend.manual_seed(0)
    backend.set_rng_state(ckpt.rng_state)  # the same by hand
    assert np.array_equal(backend.rng().standard_normal(6), after_save)


def test_key_layout_and_plain_numpy_load(xp, tmp_path):
    model, opt, _ = setup_trained()
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, config={"a": 1}, step=5, objective_state={"gamma": np.array(0.5)})
    with np.load(path, allow_pickle=False) as z:  # host arrays, no pickle needed
        keys = set(z.files)
        assert str(z["format"]) == "minivae-checkpoint" and int(z["format_version"]) == FORMAT_VERSION
        assert json.loads(str(z["config"])) == {"a": 1} and int(z["step"]) == 5
        assert z["model/encoder/0/weight"].shape == (4, 3) and z["model/running_mean"].shape == (2,)
        assert z["optim/m"].shape == z["optim/v"].shape == (opt.flat_params.size,)
        meta = json.loads(str(z["optim/__meta__"]))
        assert meta["type"] == "Adam" and meta["t"] == 3 and meta["param_shapes"][0] == [4, 3]
        assert json.loads(str(z["objective/__json__"])) == {"gamma": {"__minivae_array__": "objective/gamma"}}
        assert float(z["objective/gamma"]) == 0.5
        assert "backend" in json.loads(str(z["rng_state"]))
    assert {"model/encoder/0/bias", "model/encoder/2/weight", "model/encoder/2/bias", "epoch",
            "extra_json", "minivae_version"} <= keys


def test_sgd_momentum_state_round_trip(tmp_path):
    backend.use("numpy", dtype="float64", seed=1)
    model = WithBuffer()
    opt = SGD(model, lr=0.1, momentum=0.9, nesterov=True)
    x = Tensor(backend.rng().standard_normal((4, 3)))
    train(model, opt, x, 2)
    save_checkpoint(tmp_path / "c.npz", model, opt)
    twin = WithBuffer()
    twin_opt = SGD(twin, lr=0.1, momentum=0.9, nesterov=True)
    load_checkpoint(tmp_path / "c.npz", twin, twin_opt)
    assert np.array_equal(opt.momentum_buffer, twin_opt.momentum_buffer) and twin_opt.t == 2


# ------------------------------------------------------------------ atomic writes

@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_write_keeps_previous_checkpoint(tmp_path, monkeypatch, error):
    model, opt, _ = setup_trained()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, opt, step=1)
    good = path.read_bytes()

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise error

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(error)):
        save_checkpoint(path, model, opt, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temp file left behind
    assert load_checkpoint(path).step == 1


def test_unserialisable_config_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="config is not JSON-serialisable"):
        save_checkpoint(tmp_path / "c.npz", WithBuffer(), config={"path": object()})
    with pytest.raises(TypeError, match="step must be an integer"):
        save_checkpoint(tmp_path / "c.npz", WithBuffer(), step=1.5)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ refusals

def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nothing.npz"):
        load_checkpoint(tmp_path / "nothing.npz")


def test_truncated_and_garbage_files(tmp_path):
    model, opt, _ = setup_trained()
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is corrupt or truncated .*use an earlier checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(CheckpointError, match=r"not a minivae checkpoint: not an \.npz \(zip\) archive"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file is empty"):
        load_checkpoint(path)


def test_corrupted_member_is_reported(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, WithBuffer(), extra_arrays={"big": np.full(1000, 7.0)})
    data = bytearray(path.read_bytes())
    i = data.find(np.full(8, 7.0).tobytes())
    data[i:i + 8] = np.full(1, 8.0).tobytes()  # flip payload bytes: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is corrupt or truncated"):
        load_checkpoint(path)


def test_foreign_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, images=np.zeros((2, 2)), labels=np.zeros(2))
    with pytest.raises(CheckpointError, match="not a minivae checkpoint .*format marker; it holds: images, labels"):
        load_checkpoint(path)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, format=np.array("minivae-checkpoint"), format_version=np.array(1),
             payload=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(CheckpointError, match="holds an object array under 'payload'.*allow_pickle=False"):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, WithBuffer())
    with np.load(path) as z:
        entries = dict(z)
    entries["format_version"] = np.array(FORMAT_VERSION + 1)
    np.savez(path, **entries)
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}, newer than this "
                                              f"minivae supports \\({FORMAT_VERSION}\\); upgrade minivae"):
        load_checkpoint(path)


def test_model_mismatch_lists_names_and_changes_nothing(tmp_path):
    backend.use("numpy", dtype="float64", seed=0)
    path = tmp_path / "c.npz"
    save_checkpoint(path, WithBuffer(width=4))
    other = WithBuffer(width=5)
    other.extra = nn.Linear(2, 2)
    before = {k: host(v).copy() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, other)
    message = str(info.value)
    assert "does not match the model" in message
    assert "missing from the checkpoint: ['extra.weight', 'extra.bias']" in message
    assert "encoder.0.weight: checkpoint (4, 3) vs model (5, 3)" in message
    assert "encoder.2.weight: checkpoint (2, 4) vs model (2, 5)" in message
    assert all(np.array_equal(host(v), before[k]) for k, v in other.state_dict().items())
    smaller = WithBuffer(width=4)
    del smaller._buffers["running_mean"]
    with pytest.raises(CheckpointError, match=r"not in the model: \['running_mean'\]"):
        load_checkpoint(path, smaller)


def test_optimizer_mismatch(tmp_path):
    backend.use("numpy", dtype="float64", seed=0)
    model = WithBuffer()
    path = tmp_path / "c.npz"
    save_checkpoint(path, model)
    with pytest.raises(CheckpointError, match="holds no optimiser state"):
        load_checkpoint(path, model, Adam(model))
    save_checkpoint(path, model, Adam(model))
    with pytest.raises(CheckpointError, match="optimiser state does not fit: it is 'Adam' state, this is SGD"):
        load_checkpoint(path, model, SGD(model, lr=0.1))


def test_loads_onto_another_dtype(tmp_path):
    """A float32 checkpoint loads into a float64 model (cast by load_state_dict)."""
    model, opt, _ = setup_trained()  # float32 (the conftest default)
    save_checkpoint(tmp_path / "c.npz", model, opt)
    backend.use("numpy", dtype="float64")
    twin = WithBuffer()
    load_checkpoint(tmp_path / "c.npz", twin, Adam(twin))
    assert twin.encoder[0].weight.dtype == np.float64
    assert np.array_equal(host(twin.encoder[0].weight.data), host(model.encoder[0].weight.data).astype(np.float64))


def test_string_typed_model_arrays_are_refused(tmp_path):
    from minivae import nn
    from minivae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    layer = nn.Linear(2, 3)
    path = tmp_path / "c.npz"
    save_checkpoint(path, layer)
    data = dict(np.load(path))
    data["model/weight"] = data["model/weight"].astype(str)       # "0.123..." strings, same shape
    np.savez(path, **data)
    before = layer.weight.data.copy()
    with pytest.raises(CheckpointError, match="non-numeric model arrays"):
        load_checkpoint(path, layer)
    assert np.array_equal(layer.weight.data, before)
