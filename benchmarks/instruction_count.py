import sys, torch
torch.set_num_threads(1)
import augpatch
from augpatch.functional import warp_patches
B, C, H, W, N = [int(x) for x in sys.argv[1:6]]; K = int(sys.argv[6])
g = torch.Generator().manual_seed(0)
img = torch.rand(B, C, H, W, generator=g)
side = torch.randint(16, 64, (N, 2), generator=g)
x1 = (torch.rand(N, generator=g) * (W - side[:, 0])).long(); y1 = (torch.rand(N, generator=g) * (H - side[:, 1])).long()
boxes = torch.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], 1)
o2i = torch.randint(0, B, (N,), generator=g)
a = torch.rand(N, generator=g) - 0.5
theta = torch.zeros(N, 2, 3); theta[:, 0, 0] = a.cos(); theta[:, 0, 1] = -a.sin(); theta[:, 1, 0] = a.sin(); theta[:, 1, 1] = a.cos()
wgt = torch.rand(B, C, H, W, generator=g)
for _ in range(2):
    x = img.clone().requires_grad_(); (warp_patches(x, boxes, theta, o2i) * wgt).sum().backward()
for _ in range(K):
    x = img.clone().requires_grad_(); (warp_patches(x, boxes, theta, o2i) * wgt).sum().backward()
print("ok", augpatch.__file__)
