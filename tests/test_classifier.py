"""The classifier (GECO's CLA constraint, the Fréchet features): shapes, a float64 gradient
check, training to high accuracy on easy data, save/load round trips, refusals, the CLI,
and a GECO run with the CLA constraint."""
import json
import os

import numpy as np
import pytest

from minivae import Tensor, backend, gradcheck
from minivae.checkpoint import save_checkpoint
from minivae.classifier import (Classifier, ClassifierError, accuracy, cross_entropy, load_classifier,
                                train_classifier)
from minivae.classifier.__main__ import main as classifier_main
from minivae.train.__main__ import main as train_main

# the real files, where the rest of the suite looks for them: $MINIVAE_DATA or ../shared/data
_ROOTS = [p for p in (os.environ.get("MINIVAE_DATA"),
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")) if p]
MNIST_DIR = next((os.path.normpath(p) for p in _ROOTS
                  if os.path.isfile(os.path.join(p, "mnist", "train-images-idx3-ubyte.gz"))), None)
HAVE_MNIST = MNIST_DIR is not None


def make_bars(path, n=600, size=12, seed=0):
    """Three easy classes: a horizontal bar, a vertical bar, a diagonal, at random places, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.15, size=(n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    for i in range(n):
        r, c = rng.integers(2, size - 2, size=2)
        if y[i] == 0:
            x[i, 0, r, 1:-1] = 1.0
        elif y[i] == 1:
            x[i, 0, 1:-1, c] = 1.0
        else:
            idx = np.arange(size)
            x[i, 0, idx, (idx + c) % size] = 1.0
    np.savez(path, x=x, y=y)
    return str(path)


@pytest.fixture(scope="module")
def bars_classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bars")
    data = make_bars(folder / "bars.npz")
    backend.use("numpy", dtype="float32", seed=0)
    result = train_classifier(data, str(folder / "runs" / "classifier-bars"), epochs=4, batch_size=32, lr=2e-3,
                              log=lambda *_: None)
    return folder, data, result


def test_shapes_for_28_and_32_pixel_images():
    for shape in ((1, 28, 28), (3, 32, 32)):
        model = Classifier(input_shape=shape, n_classes=10)
        x = Tensor(np.random.default_rng(0).random((5,) + shape).astype(np.float32))
        assert model(x).shape == (5, 10) and model.features(x).shape == (5, 128)
        assert model.input_shape == shape
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        Classifier((1, 28, 28))(Tensor(np.zeros((2, 1, 32, 32), dtype=np.float32)))
    with pytest.raises(ValueError, match="n_classes"):
        Classifier((1, 28, 28), n_classes=1)


def test_gradient_check_of_the_classifier_and_its_loss(xp):
    model = Classifier((1, 8, 8), n_classes=3, channels=(2, 3), hidden=5)
    x = Tensor(xp.asarray(np.random.default_rng(0).random((4, 1, 8, 8))), requires_grad=True)
    labels = xp.asarray([0, 2, 1, 2])
    gradcheck.check(lambda x: cross_entropy(model(x), labels), [x] + model.parameters(), mode="directional",
                    n_directions=3)


def test_cross_entropy_matches_its_formula():
    backend.use("numpy", dtype="float64")
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    expected = np.mean([np.log(np.exp(row).sum()) - row[t] for row, t in zip(logits, [1, 0])])
    assert cross_entropy(Tensor(logits), np.array([1, 0])).item() == pytest.approx(expected)


def test_training_reaches_high_accuracy_and_saves_it(bars_classifier):
    folder, data, result = bars_classifier
    assert result["test_accuracy"] >= 0.95, result
    assert os.path.isfile(result["path"]) and result["path"].endswith("classifier.npz")
    model = load_classifier(os.path.dirname(result["path"]))
    assert model.info["test_accuracy"] == result["test_accuracy"]
    assert model.info["dataset"] == data and model.info["input_shape"] == [1, 12, 12]
    assert model.n_classes == 3 and not model.training
    from minivae.data import load_dataset
    test = load_dataset(data, split="test")
    logits = model(Tensor(test.images)).numpy()      # accuracy from its definition: argmax = label
    expected = (logits.argmax(axis=1) == test.labels).mean()
    assert result["test_accuracy"] == pytest.approx(expected)
    assert accuracy(model, test.images, test.labels, batch_size=7) == pytest.approx(expected)
    again = load_classifier(result["path"])                         # the .npz itself
    x = Tensor(test.images[:7])
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())


def test_load_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m minivae.classifier"):
        load_classifier(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_classifier(tmp_path / "nothing.npz")
    np.savez(tmp_path / "random.npz", a=np.zeros(3))
    with pytest.raises(ClassifierError, match="not a minivae classifier"):
        load_classifier(tmp_path / "random.npz")
    save_checkpoint(tmp_path / "vae.npz", None, config={"objective": "elbo"})
    with pytest.raises(ClassifierError, match="not a classifier"):
        load_classifier(tmp_path / "vae.npz")


def test_cli_trains_prints_accuracy_and_refuses_to_overwrite(tmp_path, capsys):
    data = make_bars(tmp_path / "bars.npz", n=200, seed=1)
    out = tmp_path / "clf"
    assert classifier_main(["--dataset", data, "--out", str(out), "--epochs", "1", "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("test accuracy ") and str(out) in printed
    assert classifier_main(["--dataset", data, "--out", str(out), "--epochs", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert classifier_main(["--dataset", "sprites", "--n-train", "64", "--n-test", "32", "--out",
                            str(tmp_path / "bad"), "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MNIST, reason="real MNIST files not found ($MINIVAE_DATA or ../shared/data)")
def test_mnist_subset_accuracy(tmp_path):
    result = train_classifier("mnist", str(tmp_path / "m"), epochs=3, batch_size=32, data_dir=MNIST_DIR,
                              n_train=3000, n_test=1000, log=lambda *_: None)
    assert result["test_accuracy"] > 0.9, result   # 3,000 images; the full set reaches ≥ 98 %


def test_geco_with_the_cla_constraint(bars_classifier, monkeypatch, capsys):
    folder, data, result = bars_classifier
    monkeypatch.chdir(folder)        # the default classifier folder runs/classifier-bars is found
    out = folder / "geco-cla"
    flags = ["--dataset", data, "--model", "dense", "--hidden", "32", "--latent-dim", "4", "--batch-size", "32",
             "--epochs", "3", "--log-every", "5", "--objective", "geco", "--constraint", "re,cla",
             "--kappa", "0.25,0.8", "--out", str(out)]
    assert train_main(flags) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(len(r["lambda"]) == len(r["c_ma"]) == 2 for r in records)
    assert np.isfinite([r["c_batch"] for r in records]).all()
    state = json.loads((out / "report.json").read_text())["objective_state"]
    assert state["constraints"] == ["re", "cla"] and state["step"] == records[-1]["step"]
    # a classifier for other images is refused before training
    wrong = folder / "wrong"
    backend.use("numpy", dtype="float32")
    save_checkpoint(wrong / "classifier.npz" if wrong.mkdir() is None else None, Classifier((1, 28, 28), 3),
                    config={"kind": "minivae-classifier", **Classifier((1, 28, 28), 3).config()})
    assert train_main(flags[:-1] + [str(folder / "geco-wrong"), "--classifier", str(wrong)]) == 2
    assert "(1, 28, 28)" in capsys.readouterr().err
