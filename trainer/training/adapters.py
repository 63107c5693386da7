"""peft adapters on the activation path of a frozen model, without touching the model.

Why the activation path. LookDev trains on the MODEL the graph hands it, which other branches
of the same graph also sample with. Patching its weights (W + B·A, as ComfyUI's native trainer
does) would change what those branches render and would rebuild every adapted weight on every
forward. Instead a forward hook on each target layer adds the adapter's output to the layer's
output: the model's modules, state dict and weights stay bit-identical, ComfyUI's own weight
patches (other LoRAs) still apply underneath, and removing the hooks restores the model.

How. peft wraps modules in place, so it wraps *proxies*: one flat ModuleDict (the "shadow"),
one proxy per target layer sharing the real layer's weight tensors (no copy). The real layer
computes once; its hook hands the output to the proxy (which returns it as its own "base layer"
result) and runs the peft wrapper, which returns output + adapter delta. Adapter state is
peft's own (`get_peft_model_state_dict` / `set_peft_model_state_dict` on the shadow).

The fast path. For plain LoRA the hook adds scale · B(A(dropout(x))) from the wrapper's own
modules itself: peft's arithmetic without its per-call bookkeeping, which on a small model is a
large share of the step. Under CUDA autocast the branch runs in the compute dtype, as peft's
does, without peft's fp32 round trip of the input. Under CPU autocast it runs in fp32: at rank
8-32 a bf16 matmul or convolution there costs several times its fp32 twin (casts and oneDNN
reorders around very little arithmetic), and the base layer's output stays bf16. DoRA, LoHa and
LoKr run through peft's forward.
"""

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

ALGORITHMS = {
    "lora": "LoRA: low-rank update B·A (Hu et al.). The portable default.",
    "dora": "DoRA: LoRA with a learned per-output magnitude (Liu et al.); often finer detail.",
    "loha": "LoHa: Hadamard product of two low-rank pairs (LyCORIS); more capacity per rank.",
    "lokr": "LoKr: Kronecker product factors (LyCORIS); very small files.",
}


class _StashMixin:
    """A stand-in for a real layer inside a peft wrapper: returns the output the real layer
    already computed (set by the hook), so the frozen layer never runs twice."""

    stash = None

    @classmethod
    def mirror(cls, real):
        # Build on the meta device (allocates nothing), then share the real parameters.
        proxy = cls.__new__(cls)
        nn.Module.__init__(proxy)
        for name in cls._MIRRORED:
            setattr(proxy, name, getattr(real, name))
        proxy.weight = real.weight
        proxy.bias = real.bias
        proxy.is_proxy = True
        return proxy

    def forward(self, x, *args, **kwargs):
        if getattr(self, "is_proxy", False):
            if self.stash is None:
                raise RuntimeError("LookDev adapter proxy ran outside its layer's forward hook")
            return self.stash
        # peft builds its own sub-layers with type(base_layer)(...): behave as the plain layer.
        return super().forward(x, *args, **kwargs)


class ProxyLinear(_StashMixin, nn.Linear):
    _MIRRORED = ("in_features", "out_features")


class ProxyConv2d(_StashMixin, nn.Conv2d):
    _MIRRORED = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                 "groups", "padding_mode", "transposed", "output_padding", "_reversed_padding_repeated_twice")


@dataclass(frozen=True)
class AdapterSpec:
    algorithm: str = "lora"
    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0

    def validate(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"network algorithm {self.algorithm!r} is not one of {sorted(ALGORITHMS)}")
        if not 1 <= self.rank <= 1024:
            raise ValueError(f"rank must be between 1 and 1024, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"adapter dropout must be in [0, 1), got {self.dropout}")


def _peft_config(spec, names):
    import peft

    if spec.algorithm in ("lora", "dora"):
        return peft.LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                               target_modules=list(names), use_dora=spec.algorithm == "dora",
                               init_lora_weights=True)
    if spec.algorithm == "loha":
        return peft.LoHaConfig(r=spec.rank, alpha=spec.alpha, module_dropout=spec.dropout,
                               target_modules=list(names), init_weights=True)
    return peft.LoKrConfig(r=spec.rank, alpha=spec.alpha, module_dropout=spec.dropout,
                           target_modules=list(names), init_weights=True)


def _autocast_enabled(device_type):
    """torch >= 2.4 takes the device type; older versions have one query per device."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _plain_lora_hook(wrapper):
    """The fast path's forward hook for a plain LoRA wrapper (see the module docstring); None
    for every other algorithm."""
    import peft

    if not isinstance(wrapper, peft.tuners.lora.LoraLayer) or wrapper.lora_variant or list(wrapper.lora_A) != ["default"]:
        return None
    down, up = wrapper.lora_A["default"], wrapper.lora_B["default"]
    dropout = wrapper.lora_dropout["default"]
    dropout = None if isinstance(dropout, nn.Identity) else dropout
    scale = wrapper.scaling["default"]

    def update(x):
        if dropout is not None:
            x = dropout(x)
        return up.forward(down.forward(x))

    def add_lora(module, args, output):
        x = args[0]
        device = x.device.type
        if not _autocast_enabled(device):
            delta = update(x if x.dtype == down.weight.dtype else x.to(down.weight.dtype))
        elif device == "cpu":
            with torch.autocast(device, enabled=False):
                delta = update(x.to(down.weight.dtype)).to(output.dtype)
        else:
            delta = update(x)
        result = torch.add(output, delta, alpha=scale)
        return result if result.dtype == output.dtype else result.to(output.dtype)

    return add_lora


def _peft_hook(wrapper):
    """A forward hook running the peft wrapper on the layer's input, its base layer answering
    with the output the real layer already computed."""
    proxy = wrapper.get_base_layer()

    def add_adapter(module, args, output):
        proxy.stash = output
        try:
            return wrapper(args[0])  # peft casts the input to the adapter dtype and back
        finally:
            proxy.stash = None

    return add_adapter


class AdapterSet(nn.Module):
    """The trainable adapters for a set of layers of a frozen model.

    `layers` maps an adapter name (a flat, dot-free key such as the kohya module name) to the
    real layer. `attach()` installs the forward hooks for as long as the context lasts.
    """

    def __init__(self, layers, spec, seed=0):
        super().__init__()
        spec.validate()
        if not layers:
            raise ValueError("no layers to train: the target preset matched nothing in this model")
        bad = [name for name in layers if "." in name]
        if bad:
            raise ValueError(f"adapter names must not contain dots: {bad[:3]}")
        self.spec = spec
        self._real = dict(layers)
        shadow = nn.ModuleDict()
        for name, real in self._real.items():
            if isinstance(real, nn.Conv2d):
                shadow[name] = ProxyConv2d.mirror(real)
            elif isinstance(real, nn.Linear):
                shadow[name] = ProxyLinear.mirror(real)
            else:
                raise ValueError(f"layer {name} is a {type(real).__name__}; only Linear and Conv2d take adapters")
        import peft

        # peft draws its initial adapter weights from torch's global RNG; fork it so the
        # adapters depend only on `seed` and the caller's RNG stream is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            peft.inject_adapter_in_model(_peft_config(spec, self._real), shadow)
        self.shadow = shadow
        for param in self.shadow.parameters():
            param.requires_grad_(False)
        for param in self.trainable_parameters():
            param.requires_grad_(True)

    def names(self):
        return list(self._real)

    def wrapper(self, name):
        return self.shadow[name]

    def named_trainable(self):
        """(adapter name, peft parameter name, tensor) for every trainable tensor, in a stable order."""
        out = []
        for name in self._real:
            for pname, param in self.shadow[name].named_parameters():
                if not pname.startswith("base_layer."):
                    out.append((name, pname, param))
        return out

    def trainable_parameters(self):
        return [param for _, _, param in self.named_trainable()]

    def to_training(self, device, dtype=torch.float32):
        """Move the adapter weights (never the shared base weights) to the training device."""
        for _, _, param in self.named_trainable():
            param.data = param.data.to(device=device, dtype=dtype)
        return self

    def num_parameters(self):
        return sum(p.numel() for p in self.trainable_parameters())

    @contextlib.contextmanager
    def attach(self):
        """Add the adapters to the real layers' outputs while the context is open."""
        handles = []
        try:
            for name, real in self._real.items():
                handles.append(real.register_forward_hook(self._hook(self.shadow[name])))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _hook(wrapper):
        return _plain_lora_hook(wrapper) or _peft_hook(wrapper)

    def adapter_state(self):
        """{adapter name: {peft state-dict name: tensor}} detached copies, for saving: peft's
        get_peft_model_state_dict, grouped by layer."""
        import peft

        state = {}
        for key, value in peft.get_peft_model_state_dict(self.shadow).items():
            name, _, pname = key.partition(".")
            state.setdefault(name, {})[pname] = value.detach().clone()
        return state

    @torch.no_grad()
    def load_adapter_state(self, state):
        """Load adapter_state()'s format (names of older checkpoints too) with peft's
        set_peft_model_state_dict, after checking every tensor is there in its shape."""
        import peft

        given = {f"{name}.{peft_name(pname)}": value for name, params in state.items() for pname, value in params.items()}
        own = peft.get_peft_model_state_dict(self.shadow)
        missing = [key for key in own if key not in given]
        if missing:
            raise ValueError(f"checkpoint lacks adapter tensors, e.g. {missing[:3]}")
        for key, param in own.items():
            if tuple(given[key].shape) != tuple(param.shape):
                raise ValueError(f"checkpoint tensor {key} has shape {tuple(given[key].shape)}, "
                                 f"this network needs {tuple(param.shape)}")
        peft.set_peft_model_state_dict(self.shadow, {key: given[key] for key in own})


def peft_name(pname):
    """peft's state-dict name of an adapter tensor, also for the parameter names LookDev 0.1
    checkpoints stored ("lora_A.default.weight" -> "lora_A.weight")."""
    name = pname.replace(".default", "")
    return "lora_magnitude_vector" if name == "lora_magnitude_vector.weight" else name
