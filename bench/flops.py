"""How close LookDev's training step comes to the machine's arithmetic limit.

For each UNet width: the FLOPs of one training step (forward + backward with the adapters
attached, counted by torch.utils.flop_counter.FlopCounterMode: matmuls, convolutions and
attention; elementwise work is not counted), against the measured step time of LookDev's
training loop on the same model, batch and bucket size, as achieved GFLOP/s. Next to it: a plain
torch matmul's GFLOP/s on the same machine (large square GEMMs, fp32 and bf16), the practical
ceiling. Also given: the common "3 x forward" estimate; with a frozen base model the backward
pass computes no weight gradients, so the counted step is nearer 2 x forward.

    python bench/flops.py                          # widths 64, 160 and 320 at 128 px, ~2 minutes
    python bench/flops.py --widths 320 --resolution 256 --dtype bf16
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402


def parse_args(argv=None):
    parser = _bench.parser(__doc__)
    parser.add_argument("--widths", default="64,160,320", help="UNet model_channels, comma-separated")
    parser.add_argument("--resolution", type=int, default=128, help="bucket side in pixels (latent = /8)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps timed per width")
    parser.add_argument("--warmup", type=int, default=3, help="first steps not timed")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="training compute dtype")
    parser.add_argument("--targets", default="attention", help="LookDev target preset (node default: attention)")
    return parser.parse_args(argv)


def matmul_gflops(dtype, size=2048, reps=8):
    import torch

    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - began)
    return 2 * size ** 3 / _bench.median(times) / 1e9


class StepTimes:
    """TrainHooks that timestamps each optimizer step."""

    def __init__(self):
        self.stamps = []

    def check_cancel(self):
        pass

    def on_step(self, report):
        self.stamps.append(time.perf_counter())

    def on_checkpoint(self, snapshot):
        pass

    def on_validate(self, step):
        pass


class PreEncoded:
    """A denoiser whose captions were encoded up front, so FLOP counts hold the UNet alone."""

    def __init__(self, denoiser, texts):
        self.denoiser = denoiser
        self.encoded = denoiser.encode_captions(texts)

    def encode_captions(self, texts):
        return {text: self.encoded[text] for text in texts}

    def __getattr__(self, name):
        return getattr(self.denoiser, name)


def attach_adapters(model, config):
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.lora.keys import kohya_names
    from lookdev.trainer.training.adapters import AdapterSet
    from lookdev.trainer.training.targets import select_targets

    layers = bridge.named_layers(model)
    names = kohya_names(select_targets(layers, "sd1", config.targets), "sd1", bridge.lora_key_map(model))
    modules = dict(layers)
    return AdapterSet({name: modules[path] for path, name in names.items()}, config.adapter_spec(), seed=0)


def measure_width(width, args, clip):
    """FLOPs of one forward and of one training step, and the median step time, for one width."""
    import dataclasses

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import tiny_models
    from lookdev.trainer import comfy_bridge as bridge
    from lookdev.trainer.training import loop
    from lookdev.trainer.training.config import TrainConfig
    from lookdev.trainer.training.data import Example, all_captions
    from lookdev.trainer.training.registries import DTYPES

    model = tiny_models.build_model("sd15", 0, unet_config={**tiny_models.SD15_TINY_UNET, "model_channels": width})
    side = args.resolution // 8
    gen = torch.Generator().manual_seed(0)
    examples = [Example(latent=torch.randn(4, side, side, generator=gen), captions=(f"lkdv, frame {i}",),
                        dropped_caption="lkdv") for i in range(max(4, args.batch))]
    config = TrainConfig(name="flops", steps=args.steps, batch_size=args.batch, dtype=args.dtype, targets=args.targets,
                         timestep_sampling="uniform").validate()
    with bridge.training_session(model, clip, DTYPES[config.dtype]) as session:
        den = PreEncoded(session, all_captions(examples))
        adapters = attach_adapters(model, config)
        with adapters.attach():
            adapters.train()
            with FlopCounterMode(display=False) as step_count:  # counts fwd + bwd (the optimizer has no matmuls)
                loop.train(dataclasses.replace(config, steps=1), den, adapters, examples)
            with FlopCounterMode(display=False) as forward_count:  # the same samples, forward only
                loop.evaluation_loss(den, examples[:args.batch], fractions=(0.5,))
            hooks = StepTimes()
            loop.train(config, den, adapters, examples, hooks=hooks)
    stamps = hooks.stamps[args.warmup:]
    return {"params": sum(p.numel() for p in model.model.diffusion_model.parameters()),
            "fwd": forward_count.get_total_flops(), "step": step_count.get_total_flops(),
            "seconds": _bench.median([b - a for a, b in zip(stamps, stamps[1:])])}


def main(argv=None):
    args = parse_args(argv)
    host = _bench.start_comfy(args.threads or None)
    import torch
    import tiny_models

    machine = _bench.machine(host)
    print(machine, flush=True)
    peak32 = matmul_gflops(torch.float32)
    peak16 = matmul_gflops(torch.bfloat16)
    print(f"matmul 2048^3: fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s", flush=True)
    clip = tiny_models.build_clip("sd15")
    peak = peak16 if args.dtype == "bf16" else peak32
    rows, ratios = [], []
    for width in (int(w) for w in args.widths.split(",")):
        m = measure_width(width, args, clip)
        achieved = m["step"] / m["seconds"] / 1e9
        ratios.append(m["step"] / m["fwd"])
        rows.append([width, f"{m['params'] / 1e6:.1f}M", f"{m['fwd'] / 1e9:.2f}", f"{m['step'] / 1e9:.2f}",
                     f"{3 * m['fwd'] / 1e9:.2f}", f"{m['seconds'] * 1000:.0f}", f"{achieved:.1f}",
                     f"{100 * achieved / peak:.0f}%"])
        print(f"  width {width}: {m['step'] / 1e9:.2f} GFLOP/step in {m['seconds'] * 1000:.0f} ms -> "
              f"{achieved:.1f} GFLOP/s", flush=True)
    headers = ["UNet width", "params", "fwd GFLOP", "fwd+bwd GFLOP (counted)", "3 x fwd GFLOP", "step ms (median)",
               "achieved GFLOP/s", f"of {args.dtype} matmul"]
    body = _bench.table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in (
        f"Plain torch.mm 2048x2048x2048 on this machine: **fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s**.",
        f"LookDev's loop (trainer/training/loop.train) on the tiny SD1.5-style UNet at {args.resolution}px "
        f"(latent {args.resolution // 8}x{args.resolution // 8}), batch {args.batch}, {args.dtype}, targets "
        f"'{args.targets}', rank 16; {args.steps} steps, first {args.warmup} not timed.",
        "FLOPs: FlopCounterMode over one optimizer step of the loop (forward + backward with the adapters "
        "attached; mm, conv, attention; 2 FLOPs per multiply-add); achieved = counted step FLOPs / median step time.",
        f"The counted step is {min(ratios):.2f}-{max(ratios):.2f} x forward, not 3 x: the frozen base computes "
        "no weight gradients.",
        f"Load average {_bench.load_now():.2f} at the end.",
    ))
    _bench.publish(f"flops ({args.dtype}, {args.resolution}px, batch {args.batch})", machine, body, record=not args.no_record)


if __name__ == "__main__":
    main()
