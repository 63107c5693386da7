"""The training loop on a small plain-torch denoiser: the library without ComfyUI."""

import math

import pytest
import torch
from torch import nn

from lookdev.trainer.training import objective
from lookdev.trainer.training.adapters import AdapterSet
from lookdev.trainer.training.config import TrainConfig
from lookdev.trainer.training.data import Example
from lookdev.trainer.training.loop import NonFiniteLoss, TrainHooks, evaluation_loss, train
from lookdev.trainer.training.state import latest_checkpoint, load_checkpoint, save_checkpoint


class ToyNet(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv_in = nn.Conv2d(4, 16, 3, padding=1)
        self.mix = nn.Linear(16 + 8, 16)
        self.conv_out = nn.Conv2d(16, 4, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        self.requires_grad_(False)

    def forward(self, x, t, cond):
        h = torch.relu(self.conv_in(x))
        b, c, hh, ww = h.shape
        feats = torch.cat([h.permute(0, 2, 3, 1), cond[:, None, None, :].expand(b, hh, ww, 8) * t[:, None, None, None]], -1)
        h = torch.relu(self.mix(feats)).permute(0, 3, 1, 2)
        return self.conv_out(h)


class ToyDenoiser:
    """ComfyUI's eps / v / flow wrappers in miniature, around a frozen ToyNet."""

    def __init__(self, kind, net):
        self.kind, self.net, self.sigma_data, self.device = kind, net, 1.0, torch.device("cpu")

    def sigmas(self, u, latent_shape=None):
        return u if self.kind == "flow" else 0.03 + u * 10.0

    def noise_scaling(self, sigma, noise, x0):
        s = sigma.view(-1, 1, 1, 1)
        return (1 - s) * x0 + s * noise if self.kind == "flow" else x0 + s * noise

    def denoise(self, x, sigma, conds):
        s = sigma.view(-1, 1, 1, 1)
        cond = torch.stack(conds)
        if self.kind == "flow":
            return x - s * self.net(x, sigma, cond)
        c_in = 1 / torch.sqrt(s * s + 1)
        out = self.net(x * c_in, sigma, cond)
        if self.kind == "eps":
            return x - s * out
        return x / (s * s + 1) - out * s / torch.sqrt(s * s + 1)

    def encode_captions(self, texts):
        return {t: torch.randn(8, generator=torch.Generator().manual_seed(len(t) * 7 + sum(map(ord, t)))) for t in texts}


def examples(n=4):
    gen = torch.Generator().manual_seed(5)
    out = []
    for i in range(n):
        latent = torch.randn(4, 8, 8, generator=gen) * 0.5 + (i % 2)
        out.append(Example(latent=latent, captions=(f"noir, shot {i}", f"shot {i}, noir"), dropped_caption="noir"))
    return out


def make(kind, cfg):
    net = ToyNet()
    layers = {"conv_in": net.conv_in, "mix": net.mix, "conv_out": net.conv_out}
    adapters = AdapterSet(layers, cfg.adapter_spec(), seed=cfg.seed)
    return net, ToyDenoiser(kind, net), adapters


def config(**kw):
    base = dict(name="toy", steps=40, batch_size=2, learning_rate=3e-3, rank=4, alpha=4.0, seed=3,
                timestep_sampling="uniform", caption_dropout=0.1)
    base.update(kw)
    return TrainConfig(**base).validate()


@pytest.mark.slow  # trains to convergence
@pytest.mark.parametrize("kind", ["eps", "v", "flow"])
def test_evaluation_loss_falls(kind):
    cfg = config()
    net, den, adapters = make(kind, cfg)
    data = examples()
    with adapters.attach():
        before = evaluation_loss(den, data)
        train(cfg, den, adapters, data)
        after = evaluation_loss(den, data)
    assert after < 0.8 * before, (before, after)


@pytest.mark.slow  # trains to convergence
@pytest.mark.parametrize("algorithm", ["lora", "dora", "loha", "lokr"])
def test_every_algorithm_trains_and_base_is_untouched(algorithm):
    cfg = config(algorithm=algorithm, steps=25)
    net, den, adapters = make("eps", cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, t, c = torch.randn(2, 4, 8, 8), torch.rand(2), torch.randn(2, 8)
    out_before = net(x, t, c)
    with adapters.attach():
        result = train(cfg, den, adapters, examples())
        assert not torch.equal(net(x, t, c), out_before)  # the adapters act while attached
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.equal(net(x, t, c), out_before)  # and leave no trace when detached
    assert len(result.losses) == 25 and all(math.isfinite(v) for v in result.losses)


class CancelAt(TrainHooks):
    def __init__(self, step, folder):
        self.step, self.folder, self.seen = step, folder, 0

    def check_cancel(self):
        if self.seen == self.step:
            raise KeyboardInterrupt("cancel")
        self.seen += 1

    def on_checkpoint(self, snapshot):
        save_checkpoint(self.folder / f"toy-{snapshot.step}.state.safetensors", snapshot)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_cancel_and_resume_is_bit_identical(tmp_path, grad_accum):
    cfg = config(steps=12, grad_accum=grad_accum, adapter_dropout=0.1, noise_offset=0.05, min_snr_gamma=5.0,
                 shuffle_captions=True)
    _, den, adapters = make("eps", cfg)
    with adapters.attach():
        straight = train(cfg, den, adapters, examples())

    _, den, adapters = make("eps", cfg)
    with adapters.attach(), pytest.raises(KeyboardInterrupt):
        train(cfg, den, adapters, examples(), hooks=CancelAt(7, tmp_path))
    path, header = latest_checkpoint(tmp_path)
    assert header["step"] == 7
    _, den, adapters = make("eps", cfg)
    with adapters.attach():
        resumed = train(cfg, den, adapters, examples(), resume=load_checkpoint(path))
    assert resumed.resumed_from == 7
    assert resumed.losses == straight.losses
    for layer, params in straight.adapter_state.items():
        for name, value in params.items():
            assert torch.equal(value, resumed.adapter_state[layer][name]), (layer, name)


class Cancelled(Exception):
    """Stands for ComfyUI's InterruptProcessingException (the node tests raise the real one)."""


class CancelInForward(ToyDenoiser):
    def __init__(self, kind, net, at_call):
        super().__init__(kind, net)
        self.calls, self.at_call = 0, at_call

    def denoise(self, x, sigma, conds):
        self.calls += 1
        if self.calls == self.at_call:
            raise Cancelled()
        return super().denoise(x, sigma, conds)


class CancelOnStep(TrainHooks):
    def __init__(self, step, folder):
        self.step, self.folder = step, folder

    def on_step(self, report):
        if report.step == self.step:
            raise Cancelled()

    def on_checkpoint(self, snapshot):
        save_checkpoint(self.folder / f"toy-{snapshot.step}.state.safetensors", snapshot)


class CancelDuringSave(CancelOnStep):
    """The first checkpoint save is cut short (a Cancel, a kill signal turned into an exception)."""

    def on_checkpoint(self, snapshot):
        if not getattr(self, "cut", False):
            self.cut = True
            raise Cancelled()
        super().on_checkpoint(snapshot)


@pytest.mark.parametrize("where, done", [("forward", 5), ("hook", 5), ("save", 4)])
def test_an_exception_anywhere_checkpoints_the_last_completed_step(tmp_path, where, done):
    cfg = config(steps=9, save_every=4, grad_accum=2)  # 2 forwards per step; step 5 is no save step
    net, den, adapters = make("eps", cfg)
    with adapters.attach():
        straight = train(cfg, den, adapters, examples())
    net, den, adapters = make("eps", cfg)
    if where == "forward":
        den = CancelInForward("eps", net, at_call=2 * 5 + 2)  # the second micro-batch of step 6
    hooks = CancelDuringSave(None, tmp_path) if where == "save" else CancelOnStep(5 if where == "hook" else None, tmp_path)
    with adapters.attach(), pytest.raises(Cancelled):
        train(cfg, den, adapters, examples(), hooks=hooks)
    path, header = latest_checkpoint(tmp_path)
    assert header["step"] == done
    _, den, adapters = make("eps", cfg)
    with adapters.attach():
        resumed = train(cfg, den, adapters, examples(), resume=load_checkpoint(path))
    assert resumed.losses == straight.losses
    for layer, params in straight.adapter_state.items():
        for name, value in params.items():
            assert torch.equal(value, resumed.adapter_state[layer][name]), (layer, name)


def test_divergence_stops_with_a_clear_error():
    cfg = config(learning_rate=0.9, optimizer="SGD (momentum)", max_grad_norm=0.0, steps=200)
    _, den, adapters = make("eps", cfg)
    with adapters.attach(), pytest.raises(NonFiniteLoss, match=r"at step \d+ .*Lower the learning rate"):
        train(cfg, den, adapters, examples())


class NaNGradients(ToyDenoiser):
    """A finite prediction whose gradient is NaN, as an fp16 backward pass that overflows gives:
    the loss alone cannot tell that the step is about to ruin the weights."""

    def denoise(self, x, sigma, conds):
        out = super().denoise(x, sigma, conds)
        return out + 0 * torch.sqrt((out - out.detach()) ** 2)  # sqrt'(0) is inf; inf * 0 is NaN


class Checkpoints(TrainHooks):
    def __init__(self):
        self.saved = []

    def on_checkpoint(self, snapshot):
        self.saved.append(snapshot)


@pytest.mark.parametrize("max_grad_norm, steps, words", [
    (1.0, 5, "the gradients became nan at step 1"),
    (0.0, 1, "the adapter weights became inf or NaN at step 1"),  # the last step: no later loss to see it
    (0.0, 5, "the adapter weights became inf or NaN at step 1"),  # before its checkpoint is written
])
def test_non_finite_gradients_stop_before_weights_are_returned_or_saved(max_grad_norm, steps, words):
    cfg = config(max_grad_norm=max_grad_norm, steps=steps, save_every=1)
    net = ToyNet()
    adapters = AdapterSet({"conv_in": net.conv_in, "mix": net.mix, "conv_out": net.conv_out}, cfg.adapter_spec(),
                          seed=cfg.seed)
    hooks = Checkpoints()
    with adapters.attach(), pytest.raises(NonFiniteLoss, match="Lower the learning rate") as caught:
        train(cfg, NaNGradients("eps", net), adapters, examples(), hooks=hooks)
    assert words in str(caught.value) and "no checkpoint was written yet" in str(caught.value)
    assert hooks.saved == []


@pytest.mark.parametrize("kind,sigma", [("eps", 0.5), ("v", 2.0), ("flow", 0.3)])
def test_perfect_denoising_has_zero_loss(kind, sigma):
    x0, noise = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    s = torch.full((2,), sigma)
    den = ToyDenoiser(kind, None)
    x = den.noise_scaling(s, noise, x0)
    pred, target = objective.prediction_and_target(kind, x, x0, x0, s)
    assert torch.allclose(pred, target)
    if kind == "eps":
        assert torch.allclose(target, noise, atol=1e-5)
    if kind == "flow":
        assert torch.allclose(target, noise - x0, atol=1e-5)


def test_unreadable_checkpoints_are_listed_with_the_reason(tmp_path):
    import json

    import safetensors.torch
    from safetensors import safe_open

    from lookdev.trainer.training.state import FORMAT, Snapshot, scan_checkpoints

    snap = Snapshot(step=3, adapter_state={"mix": {"lora_A.default.weight": torch.ones(2, 2)}},
                    optimizer_state={"param_groups": [{"lr": 0.1, "params": [0]}], "state": {}},
                    losses=[1.0, 0.5, 0.25], lrs=[0.1] * 3, config={}, recipe={}, saved_at=1.0)
    good = save_checkpoint(tmp_path / "good.state.safetensors", snap)
    header = json.loads(safe_open(str(good), "pt").metadata()["lookdev.checkpoint"])
    tensors = safetensors.torch.load_file(good)

    def write(name, meta, data=tensors):
        safetensors.torch.save_file(data, str(tmp_path / f"{name}.state.safetensors"),
                                    metadata=None if meta is None else {"lookdev.checkpoint": meta})

    write("edited", json.dumps({**header, "step": "7", "saved_at": 9.0}))
    write("no_optimizer", json.dumps({**header, "optimizer": {"state": {}}, "saved_at": 9.0}))
    write("not_json", "{step: 7")
    write("other_format", json.dumps({**header, "format": "something.else"}))
    write("kohya", None)
    write("no_history", json.dumps({**header, "saved_at": 9.0}), {"adapter/mix/lora_A.default.weight": torch.ones(2, 2)})
    found, skipped = scan_checkpoints(tmp_path)
    assert [path.name for path, _ in found] == ["no_history.state.safetensors", "good.state.safetensors"]
    assert {path.name.split(".")[0]: why for path, why in skipped} == {
        "edited": "its checkpoint data lacks or garbles step",
        "no_optimizer": "its checkpoint data lacks or garbles optimizer",
        "not_json": "its checkpoint data is not valid JSON",
        "other_format": f"not a {FORMAT} checkpoint",
        "kohya": "a safetensors file without LookDev checkpoint data"}
    with pytest.raises(ValueError, match=r"no_history.state.safetensors is not a readable LookDev checkpoint: "
                                         r"it lacks history/loss, history/lr"):
        load_checkpoint(found[0][0])
    assert load_checkpoint(good).losses == [1.0, 0.5, 0.25]


def _coarse_share(noise):
    """Share of the noise's energy left after averaging 4x4 patches: its low frequencies."""
    flat = noise.reshape(-1, 1, *noise.shape[-2:])
    return float(nn.functional.avg_pool2d(flat, 4).pow(2).mean() / flat.pow(2).mean())


@pytest.mark.parametrize("shape", [(2, 4, 32, 32), (1, 4, 16, 48), (1, 16, 3, 16, 16)],
                         ids=["sd-latent", "wide", "video-latent"])
@pytest.mark.parametrize("iterations, discount", [(6, 0.3), (10, 0.8)])
def test_multires_noise_is_unit_variance_with_more_coarse_energy(shape, iterations, discount):
    white = objective.sample_noise(shape, torch.Generator().manual_seed(1))
    pyramid = objective.sample_noise(shape, torch.Generator().manual_seed(1), 0.0, iterations, discount)
    assert pyramid.shape == white.shape
    assert abs(float(pyramid.std()) - 1.0) < 1e-4
    # White noise keeps 1/16 of its energy in 4x4 means; coarse layers add energy that survives averaging.
    assert _coarse_share(white) < 0.1
    assert _coarse_share(pyramid) > 1.3 * _coarse_share(white)  # measured 1.4x at discount 0.3
    assert (_coarse_share(pyramid) > 0.3) == (discount == 0.8)  # measured 0.37-0.47 at 0.8, 0.08-0.10 at 0.3


def test_multires_noise_off_draws_what_it_drew_before():
    """Iterations 0 takes nothing more from the generator: runs without it are unchanged."""
    shape = (2, 4, 8, 8)
    before = objective.sample_noise(shape, torch.Generator().manual_seed(3), 0.1)
    assert torch.equal(objective.sample_noise(shape, torch.Generator().manual_seed(3), 0.1, 0, 0.3), before)
    again = [objective.sample_noise(shape, torch.Generator().manual_seed(3), 0.1, 6, 0.3) for _ in range(2)]
    assert torch.equal(*again) and not torch.allclose(again[0], before)


def test_multires_noise_with_discount_zero_is_white_noise_rescaled():
    shape = (1, 4, 16, 16)
    white = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(objective.pyramid_noise(white, torch.Generator().manual_seed(0), 6, 0.0),
                          white / white.std())


def test_multires_noise_reaches_the_training_loop():
    losses = {}
    for iterations in (0, 6):
        cfg = config(steps=4, multires_noise_iterations=iterations, multires_noise_discount=0.5)
        _, den, adapters = make("eps", cfg)
        with adapters.attach():
            losses[iterations] = train(cfg, den, adapters, examples()).losses
    assert all(math.isfinite(loss) for loss in losses[6]) and losses[6] != losses[0]


@pytest.mark.parametrize("old, new, lines", [
    ({"seed": 1, "dataset": "a"}, {"seed": 1, "dataset": "a"}, []),
    ({"seed": 1}, {"seed": 2}, ["seed: 1 in the checkpoint, 2 now"]),
    # a setting written only when on: either side may lack it
    ({"seed": 1}, {"seed": 1, "multires_noise_iterations": 6},
     ["multires_noise_iterations: None in the checkpoint, 6 now"]),
    ({"seed": 1, "multires_noise_iterations": 6}, {"seed": 1},
     ["multires_noise_iterations: 6 in the checkpoint, None now"]),
    ({"dataset": "a"}, {"dataset": "b"}, ["dataset: its images, captions, repeats or resolution differ from the checkpoint's"]),
])
def test_recipe_differences_name_each_setting_either_side_lacks(old, new, lines):
    from lookdev.trainer.training.state import recipe_differences

    assert recipe_differences(old, new) == lines
