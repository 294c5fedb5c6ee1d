"""The PyTorch reference for `sla bench`: the same CIFAR ResNet (option-A shortcut, BN in training
mode, SGD momentum 0.9, weight decay 1e-4) and the same step on random data, on the CPU (or, with
`--device cuda`, on a GPU beside `sla bench --device cuda:0`, as scripts/gpu-check.sh runs it; each
step ends at the loss's copy to the host, as there), with the network depth and the image shape as
arguments, and optionally the same evaluation (eval mode, no autograd, every image under the 4
rotations, logits averaged).

Usage: python3 bench/torch_step.py [--blocks 5] [--image-size 32] [--channels 3] [--mode sla|base]
         [--steps 5] [--warmup 1] [--threads 2] [--channels-last] [--eval N] [--device cpu|cuda]
--blocks 3 is ResNet-20, 5 ResNet-32. Run it in the same command as `sla bench` with the same
shapes and quote ratios of medians (docs/performance.md).
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DownsampleA(nn.Module):
    """Option A: subsample by 2, then pad the channels with zeros."""

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        return torch.cat((x, torch.zeros_like(x)), 1)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = DownsampleA() if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class CifarResNet(nn.Module):
    def __init__(self, blocks, channels, classes):
        super().__init__()
        self.stem = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for stage, width in enumerate([16, 32, 64]):
            for i in range(blocks):
                layers.append(Block(cin, width, 2 if stage > 0 and i == 0 else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def rotations(x):
    """[B, C, H, W] -> [4B, C, H, W], image b's rotation k at row 4b + k."""
    return torch.stack([torch.rot90(x, k, (2, 3)) for k in range(4)], 1).flatten(0, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--mode", choices=["sla", "base"], default="sla")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--eval", type=int, default=0, metavar="N")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sla = args.mode == "sla"
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    device = torch.device(args.device)
    model = CifarResNet(args.blocks, args.channels, 40 if sla else 10)
    model = model.to(device=device, memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    size = args.image_size
    x = torch.randn(args.batch_size, args.channels, size, size, device=device)
    y = torch.arange(args.batch_size, device=device) % 10

    def step():
        ys = (y[:, None] * 4 + torch.arange(4, device=device)).flatten() if sla else y
        xs = rotations(x) if sla else x
        loss = F.cross_entropy(model(xs.contiguous(memory_format=memory_format)), ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    model.train()
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    median = statistics.median(times)
    layout = "channels_last" if args.channels_last else "NCHW"
    print(f"torch {torch.__version__} ResNet-{6 * args.blocks + 2} {args.mode} {args.channels}x{size}x{size} "
          f"{layout}, {device}, {torch.get_num_threads()} threads: ms/step min {times[0]:.1f} median {median:.1f} "
          f"| loss {loss:.3f}")
    if args.eval:
        model.eval()
        test = torch.randn(args.eval, args.channels, size, size, device=device)
        passes = []
        with torch.no_grad():
            for repeat in range(4):
                start = time.perf_counter()
                for batch in test.split(args.batch_size):
                    logits = model(rotations(batch).contiguous(memory_format=memory_format))
                    logits.view(len(batch), 4, -1).mean(1).argmax(1)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if repeat:
                    passes.append((time.perf_counter() - start) * 1e3)
        evaluation = statistics.median(passes)
        cheaper = (median / args.batch_size) / (evaluation / args.eval)
        print(f"  evaluation of {args.eval} images x 4 rotations: median {evaluation:.0f} ms, "
              f"{args.eval / evaluation * 1e3:.0f} images/s; per image {cheaper:.1f}x cheaper than a training step")


if __name__ == "__main__":
    main()
