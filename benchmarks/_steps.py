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
