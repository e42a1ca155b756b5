"""Forward + backward of ``warp_patches`` K times, for instruction counts under callgrind.

Wall time on a shared machine is noisy; instruction counts are not. Run it twice, with K
iterations and with none, and divide the difference by K::

    valgrind --tool=callgrind --callgrind-out-file=cg-K.out \\
        python benchmarks/instruction_count.py 8 3 256 256 64 10     # B C H W N K
    valgrind --tool=callgrind --callgrind-out-file=cg-0.out \\
        python benchmarks/instruction_count.py 8 3 256 256 64 0

(``Collected : ...`` in valgrind's output is the total.) Valgrind 3.19 (Debian 12's) does
not decode AVX-512: on a CPU that has it (this project's 2-core machines since December
2026) the process dies with SIGILL ("unhandled instruction bytes: 0x62 ...") and the counts
mean nothing; use ``benchmarks/perf_loop.py`` under ``perf record`` there. Used for the
before / after check of the restructuring in ``benchmarks/README.md``. Boxes are random integer boxes of
16-63 px, ``theta`` a small rotation each; one thread.
"""

import sys

import torch

from augpatch.functional import warp_patches


def main(argv: list[str]) -> None:
    B, C, H, W, N, K = (int(x) for x in argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(B, C, H, W, generator=g)
    side = torch.randint(16, 64, (N, 2), generator=g)
    x1 = (torch.rand(N, generator=g) * (W - side[:, 0])).long()
    y1 = (torch.rand(N, generator=g) * (H - side[:, 1])).long()
    boxes = torch.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], 1)
    o2i = torch.randint(0, B, (N,), generator=g)
    a = torch.rand(N, generator=g) - 0.5
    theta = torch.zeros(N, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = a.cos(), -a.sin()
    theta[:, 1, 0], theta[:, 1, 1] = a.sin(), a.cos()
    weight = torch.rand(B, C, H, W, generator=g)
    for _ in range(2 + K):  # two warm-up iterations in every run: they cancel out
        x = img.clone().requires_grad_()
        (warp_patches(x, boxes, theta, o2i) * weight).sum().backward()


if __name__ == "__main__":
    main(sys.argv[1:])
