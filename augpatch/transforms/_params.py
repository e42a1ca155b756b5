"""Sampling and replay of a transform's parameters: the ``p`` coins, the sharing groups
(``same_on_batch`` / ``same_on_image``), the gated ``theta`` and the replay of saved
parameters. A part of :class:`~augpatch.transforms.base.PatchAugmentationBase` (a mixin it
inherits); moved out of ``base.py`` unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from augpatch.functional.checks import (
    BoxesLike,
    check_image_sizes,
    check_theta,
    compute_dtype,
)
from augpatch.transforms.pipeline import _CALL_KEYS, Params, _any, _eye, gate_theta
from augpatch.transforms.sampling import sample_gate


class ParameterMixin:
    """The parameters of a call: sampled (`forward_parameters`) or replayed
    (`replay_parameters`). Needs the host's ``p``, ``generator``, ``same_on_*``,
    ``generate_parameters``, ``compute_matrix``, ``_flatten_boxes`` and ``_patches``."""

    def forward_parameters(
        self,
        batch_shape: Sequence[int],
        boxes: BoxesLike,
        obj_to_img: Tensor | None = None,
        *,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> Params:
        """Sample the parameters of a call without applying them (Kornia style).

        Args:
            batch_shape: the image shape ``(B, C, H, W)`` (``images.shape``).
            boxes: ``[N, 4]`` boxes or a list of ``B`` tensors ``[N_i, 4]``.
            obj_to_img: ``[N]`` image index of each box (omit for ``B == 1`` or lists).
            image_sizes: a padded batch's ``[B, 2]`` image sizes (patches are then clipped
                to their own image), or ``None``.

        Returns:
            The parameter dict (``theta``, ``batch_prob``, ``patches``,
            ``obj_to_img`` and the human parameters), ready for ``params=``.
        """
        batch, _, height, width = (int(s) for s in batch_shape)
        boxes, obj_to_img, _ = self._flatten_boxes(boxes, obj_to_img, batch)
        sizes = check_image_sizes(image_sizes, batch, (height, width))
        patches = self._patches(boxes.to(compute_dtype(boxes)), obj_to_img, (height, width), sizes)
        params = self._forward_parameters(patches, obj_to_img, batch)
        return {**params, "patches": patches, "obj_to_img": obj_to_img}

    def _groups(self, obj_to_img: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(group [N], representative [G])`` of the sharing groups, or None (no sharing)."""
        n = obj_to_img.shape[0]
        device = obj_to_img.device
        if self.same_on_batch:
            group = torch.zeros(n, dtype=torch.long, device=device)
            reps = torch.zeros(min(n, 1), dtype=torch.long, device=device)
            return group, reps
        if self.same_on_image:
            _, group = torch.unique(obj_to_img, sorted=True, return_inverse=True)
            num = int(group.max()) + 1 if n else 0
            reps = torch.full((num,), n, dtype=torch.long, device=device)
            reps = reps.scatter_reduce(0, group, torch.arange(n, device=device), "amin")
            return group, reps
        return None

    # the relaxed gate of a learnable ``p`` in train(): temperature, straight-through
    gate_temperature: float = 0.1
    gate_hard: bool = False

    def _sample_batch_prob(self, count: int, device: torch.device) -> Tensor:
        """Bool coins ``[count]``, or float relaxed gates for a learnable ``p`` in train()."""
        return sample_gate(
            self.p,
            count,
            self.generator,
            device,
            training=self.training,
            temperature=self.gate_temperature,
            hard=self.gate_hard,
        )

    def _sample_params(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        groups: tuple[Tensor, Tensor] | None,
    ) -> Params:
        if groups is None:
            return dict(self.generate_parameters(patches, obj_to_img, batch_size, self.generator))
        group, reps = groups
        sub = self.generate_parameters(patches[reps], obj_to_img[reps], batch_size, self.generator)
        out: Params = {}
        for k, v in sub.items():
            if not isinstance(v, Tensor) or v.dim() == 0 or v.shape[0] != reps.shape[0]:
                raise ValueError(
                    f"{type(self).__name__}.generate_parameters must return tensors with one "
                    f"row per object; {k!r} has shape {getattr(v, 'shape', None)}"
                )
            out[k] = v[group]
        return out

    def _matrix(self, params: Params, patches: Tensor) -> Tensor:
        theta = self.compute_matrix(params, patches)
        return check_theta(theta, patches.shape[0], f"{type(self).__name__}.compute_matrix()").to(
            patches.dtype
        )

    def _forward_parameters(self, patches: Tensor, obj_to_img: Tensor, batch_size: int) -> Params:
        """Sample ``p`` coins and human parameters; return them with the gated ``theta``."""
        groups = self._groups(obj_to_img)
        n = patches.shape[0]
        if groups is None:
            batch_prob = self._sample_batch_prob(n, patches.device)
        else:
            batch_prob = self._sample_batch_prob(groups[1].shape[0], patches.device)[groups[0]]
        params = self._sample_params(patches, obj_to_img, batch_size, groups)
        if batch_prob.dtype == torch.bool and not _any(batch_prob):  # p = 0: no matrix needed
            theta = _eye(n, patches.dtype, patches.device).contiguous()
        else:
            theta = gate_theta(self._matrix(params, patches), batch_prob)
        if batch_prob.dtype != torch.bool:  # relaxed gate: every object is resampled
            ones = torch.ones(n, dtype=torch.bool, device=patches.device)
            return {**params, "theta": theta, "batch_prob": ones, "gate": batch_prob}
        return {**params, "theta": theta, "batch_prob": batch_prob}

    def _theta_from_params(self, params: Params, patches: Tensor) -> Tensor:
        """The applied ``theta`` of (possibly hand-made) parameters: ``params['theta']``
        when present, else ``compute_matrix`` gated by ``params['batch_prob']``."""
        n = patches.shape[0]
        if params.get("theta") is not None:
            return check_theta(params["theta"], n, "params['theta']").to(patches.dtype)
        batch_prob = self._replay_batch_prob(params, n, patches.device)
        gate = params.get("gate")  # a relaxed gate's values, if any
        if gate is not None:
            batch_prob = gate.to(device=patches.device, dtype=patches.dtype)
        return gate_theta(self._matrix(params, patches), batch_prob)

    @staticmethod
    def _replay_batch_prob(params: Params, n: int, device: torch.device) -> Tensor:
        bp = params.get("batch_prob")
        if bp is None:
            return torch.ones(n, dtype=torch.bool, device=device)
        if not isinstance(bp, Tensor) or bp.shape != (n,):
            raise ValueError(
                f"params['batch_prob'] must be a bool tensor [N] with N = {n} (the number of "
                f"objects of this call), got {tuple(getattr(bp, 'shape', ()))}"
            )
        return bp.to(device=device, dtype=torch.bool)

    def replay_parameters(self, params: Mapping[str, Any], patches: Tensor) -> Params:
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict of tensors, got {type(params).__name__}")
        device = patches.device
        p = {
            k: (v.to(device) if isinstance(v, Tensor) else v)
            for k, v in params.items()
            if k not in _CALL_KEYS
        }
        n = patches.shape[0]
        p["batch_prob"] = self._replay_batch_prob(p, n, device)
        p["theta"] = self._theta_from_params(p, patches)
        return p
