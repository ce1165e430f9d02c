"""The training step the benchmarks time: minivae's ``Trainer.train_step`` with ε drawn up front
(so the step is the same work whichever benchmark, and whichever checkout, runs it)."""


def vae_training_step(model, objective, optimizer, batches, eps):
    """A closure doing one step per call, cycling through the device ``batches`` and ``eps``."""
    from minivae import Tensor
    count = [0]

    def step():
        i = count[0]
        count[0] += 1
        x = Tensor(batches[i % len(batches)])
        optimizer.zero_grad()
        loss, terms = objective.loss(x, model(x, eps=eps[i % len(eps)]))
        loss.backward()
        optimizer.step()
        objective.after_step(terms)
    return step


def torch_training_step(torch, enc, heads, dec, optimizer, batches, eps):
    """The same step in PyTorch: the balanced objective Σ(x − x̂)²/(2γ) + KL with
    γ ← min(γ, 0.99γ + 0.01·mse), the MSE read on the host each step as minivae's update does."""
    state = {"i": 0, "gamma": 1.0}
    d = batches[0][0].numel()

    def step():
        i = state["i"]
        state["i"] += 1
        x = batches[i % len(batches)]
        optimizer.zero_grad()
        mu, logvar = heads(enc(x)).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * eps[i % len(eps)]
        x_hat = torch.sigmoid(dec(z)).reshape(x.shape)
        sq = (x - x_hat).square().flatten(1).sum(1)
        kl = 0.5 * (mu.square() + logvar.exp() - logvar - 1).sum(1)
        loss = (sq / (2 * state["gamma"]) + kl).mean()
        loss.backward()
        optimizer.step()
        mse = sq.mean().item() / d
        state["gamma"] = min(state["gamma"], 0.99 * state["gamma"] + 0.01 * mse)
    return step
