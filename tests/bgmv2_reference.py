"""Helpers that build the official PyTorch BackgroundMattingV2 model (PyPI ``BackgroundMattingV2==1.0``) with
random weights and non-trivial BatchNorm statistics, for parity tests."""
import torch
from BackgroundMattingV2.model import MattingBase as TorchMattingBase
from BackgroundMattingV2.model import MattingRefine as TorchMattingRefine


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every BatchNorm random affine parameters and running statistics, and bias the decoder's last conv so
    alpha and error spread inside (0, 1) (random init alone saturates or zeroes the error map, so refinement
    would be trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=g) * 0.4 - 0.2)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=g) * 0.4 - 0.2)
        model.eval()
        x, *shortcuts = model.backbone(torch.rand(1, 6, 64, 96, generator=g))
        spread = model.decoder(model.aspp(x), *shortcuts).std(dim=(0, 2, 3))
        model.decoder.conv4.weight.mul_((0.15 / spread.clamp_min(1e-6)).view(-1, 1, 1, 1))
        model.decoder.conv4.bias[0] = 0.5
        model.decoder.conv4.bias[4] = 0.3
    return model


def reference_model(model_type: str, backbone: str, seed: int = 0, **options) -> torch.nn.Module:
    """A randomised official model: ``model_type`` 'mattingbase' or 'mattingrefine'."""
    torch.manual_seed(seed)
    if model_type == "mattingbase":
        return randomise(TorchMattingBase(backbone), seed)
    return randomise(TorchMattingRefine(backbone, **options), seed)
