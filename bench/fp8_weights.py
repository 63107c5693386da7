"""Base weights in fp8 against bf16: model-weight memory and training memory, one run each.

A Flux.1-dev-shaped model from ComfyUI's own classes (head width 128 and rope axes as the real
one, fewer and narrower blocks) is built twice with the same weights: stored in bf16, and stored
in fp8_e4m3fn as UNETLoader's weight_dtype option loads it; both compute in fp32 (each layer
casts its weight as it runs). LookDev Train Style LoRA trains each through ComfyUI's executor
with the same data, seed and settings; the table gives the diffusion model's weight bytes,
the peak memory of the training steps above the loaded model, their sum, and the fp8/bf16 ratios.

    python bench/fp8_weights.py [--hidden 512] [--depth 4] [--single 8] [--steps 6]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402


def parse_args(argv=None):
    parser = _bench.parser(__doc__)
    parser.add_argument("--hidden", type=int, default=512, help="Flux hidden size (a multiple of 128)")
    parser.add_argument("--depth", type=int, default=4, help="double-stream blocks")
    parser.add_argument("--single", type=int, default=8, help="single-stream blocks")
    parser.add_argument("--steps", type=int, default=6, help="training steps per run")
    parser.add_argument("--resolution", type=int, default=128, help="training images' size in pixels")
    return parser.parse_args(argv)


def build_model(args, weight_dtype, seed=0):
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm
    import torch
    import tiny_models

    config = sm.Flux({**tiny_models.FLUX_TINY_DIT, "hidden_size": args.hidden, "num_heads": args.hidden // 128,
                      "axes_dim": [16, 56, 56], "depth": args.depth, "depth_single_blocks": args.single})
    config.set_inference_dtype(weight_dtype, torch.float32)
    model = config.get_model({}, "", device=torch.device("cpu"))
    tiny_models.init_weights_(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def dataset(args):
    from train_vs_native import scene_dataset

    return scene_dataset(4, args.resolution)


def run(host, args, label, model):
    import statistics

    import comfy.model_management

    prompt = {
        "m": {"class_type": f"LookDevBench_{label}", "inputs": {}},
        "p": {"class_type": "LookDevBench_clip", "inputs": {}},
        "v": {"class_type": "LookDevBench_vae", "inputs": {}},
        "d": {"class_type": "LookDevBench_dataset", "inputs": {}},
        "t": {"class_type": "LookDevTrainStyleLoRA", "inputs": {
            "model": ["m", 0], "clip": ["p", 0], "vae": ["v", 0], "dataset": ["d", 0], "name": f"fp8_bench_{label}",
            "steps": args.steps, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, "batch_size": 1,
            "targets": "attention", "seed": 0, "resume": False, "save_dtype": "bf16"}},
        "k": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["t", 2], "label": "path"}},
    }
    comfy.model_management.unload_all_models()
    host.step_times.clear()
    with _bench.PeakMemory() as memory:
        host.memory = memory
        try:
            host.run(prompt, fresh=True)
        finally:
            host.memory = None
    wall, _ = _bench.step_seconds(host, 1)
    weights = sum(p.numel() * p.element_size() for p in model.model.diffusion_model.parameters())
    return {"weights": weights / 2**20, "train_mem": memory.training, "mem": memory.above, "step_s": statistics.median(wall)}


def main(argv=None):
    args = parse_args(argv)
    host = _bench.start_comfy(args.threads)
    import torch
    import tiny_models

    models = {"bf16": build_model(args, torch.bfloat16), "fp8": build_model(args, torch.float8_e4m3fn)}
    _bench.register_nodes(host, {
        "bf16": ("MODEL", models["bf16"], False), "fp8": ("MODEL", models["fp8"], False),
        "clip": ("CLIP", tiny_models.build_clip("flux_dev"), False),
        "vae": ("VAE", tiny_models.build_vae("flux_dev"), False),
        "dataset": ("LOOKDEV_DATASET", dataset(args), False)})
    params = sum(p.numel() for p in models["bf16"].model.diffusion_model.parameters())
    results = {label: run(host, args, label, model) for label, model in models.items()}
    for r in results.values():
        r["total"] = r["weights"] + r["train_mem"]  # the weights are resident before the run starts
    rows = [f"| {label} | {r['weights']:.1f} | {r['train_mem']:.1f} | {r['total']:.1f} | {r['mem']:.1f} | "
            f"{r['step_s']:.2f} |" for label, r in results.items()]
    ratio = {key: results["fp8"][key] / results["bf16"][key] for key in ("weights", "train_mem", "total", "mem")}
    body = "\n".join([
        f"Flux.1-dev-shaped model, hidden {args.hidden}, {args.depth} double + {args.single} single blocks "
        f"({params / 1e6:.1f}M parameters), {args.resolution} px, batch 1, rank 16 attention, {args.steps} steps, "
        "compute fp32 on both sides; memory: " + _bench.PeakMemory.method + ".",
        "",
        "| base weights | weights MiB | training peak above them MiB | weights + training peak MiB | "
        "node peak above weights MiB | s/step (median) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"fp8 / bf16: weights {ratio['weights']:.2f}, training peak above the weights {ratio['train_mem']:.2f}, "
        f"weights + training peak {ratio['total']:.2f}, node peak {ratio['mem']:.2f}.",
    ])
    print(body)
    if not args.no_record:
        _bench.append_results("fp8 base weights against bf16 (Train Style LoRA)", _bench.machine(host), body)


if __name__ == "__main__":
    main()
