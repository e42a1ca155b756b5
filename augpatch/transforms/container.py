"""``PatchSequential``: compose per-object transforms and resample once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from augpatch.functional._checks import check_bool
from augpatch.functional._geometry import to3x3
from augpatch.transforms.base import Params, PatchAugmentationBase, SearchVariable

__all__ = ["PatchSequential"]

_DEFAULTS = {"resample": "bilinear", "padding_mode": "zeros", "overlap": "sequential"}


class PatchSequential(PatchAugmentationBase):
    r"""Apply several per-object transforms as ONE affine per object.

    Each child samples its own parameters (with its own ``p``, sharing options and
    generator, in order); their matrices are composed per object, the patches are
    resampled once (no accumulated blur, nothing lost between steps) and the boxes are
    mapped once with the composed matrix. Children's matrices all refer to the
    ORIGINAL patch of each object (translations are fractions of the original box),
    which is what makes this different from calling the children one after another.

    With ``theta_k`` the applied matrix of child ``k`` (identity where its coin said
    no), the fused matrix is ``theta = theta_1 @ theta_2 @ ... @ theta_K`` (3x3
    homogeneous products): the content moves by child 1's forward map first.

    Args:
        *transforms: :class:`PatchAugmentationBase` instances (nesting allowed).
        p: probability that the whole sequence is applied to an object (default 1.0).
        same_on_batch, same_on_image: sharing of the sequence's own ``p`` coin only;
            children keep their own settings.
        resample, padding_mode, overlap: of the single warp; ``None`` (default) takes
            the children's common value, or the library default if they disagree.
            The children's own values are ignored.
        align_corners: must agree with every child (their matrices are composed in the
            same normalised coordinates); ``None`` takes the children's value.
        generator: for the sequence's own ``p`` coin.
        drop_invalid: as in :class:`PatchAugmentationBase` (the children's is ignored).

    Parameters (``aug._params``): a flat dict with the fused ``theta [N, 2, 3]``, the
    sequence's ``batch_prob``, ``patches``, ``obj_to_img``, ``keep`` and, beside them,
    every child's parameters under ``"<index>.<name>"`` (e.g. ``"0.angle"``,
    ``"0.theta"``, ``"1.batch_prob"``). Replaying uses the fused ``theta``; without it
    the children's entries are used. ``inverse`` inverts the fused matrix as a whole.

    Example:
        >>> from augpatch import RandomPatchRotation, RandomPatchScale
        >>> aug = PatchSequential(
        ...     RandomPatchRotation(20, p=1.0), RandomPatchScale((0.8, 1.0), p=1.0)
        ... )
        >>> out, boxes = aug(torch.rand(1, 3, 32, 32), torch.tensor([[4, 4, 24, 20]]))
        >>> sorted(k for k in aug._params if k.startswith("0."))[:2]
        ['0.angle', '0.batch_prob']
    """

    def __init__(
        self,
        *transforms: PatchAugmentationBase,
        p: float = 1.0,
        same_on_batch: bool = False,
        same_on_image: bool = False,
        resample: str | None = None,
        padding_mode: str | None = None,
        align_corners: bool | None = None,
        overlap: str | None = None,
        generator: torch.Generator | None = None,
        drop_invalid: bool = False,
    ) -> None:
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)):
            transforms = tuple(transforms[0])
        for k, t in enumerate(transforms):
            if not isinstance(t, PatchAugmentationBase):
                raise TypeError(
                    "PatchSequential children must be patch transforms, "
                    f"got {type(t).__name__} at {k}"
                )

        def common(name: str) -> Any:
            values = {getattr(t, name) for t in transforms}
            return values.pop() if len(values) == 1 else None

        child_ac = common("align_corners")
        if transforms and child_ac is None:
            raise ValueError("the children of PatchSequential disagree on align_corners")
        if align_corners is None:
            align_corners = bool(child_ac) if child_ac is not None else False
        check_bool("align_corners", align_corners)
        if child_ac is not None and child_ac != align_corners:
            raise ValueError(
                f"PatchSequential(align_corners={align_corners}) differs from its children's "
                f"align_corners={child_ac}: their matrices could not be composed"
            )
        options = {"resample": resample, "padding_mode": padding_mode, "overlap": overlap}
        for name, value in options.items():
            if value is None:
                options[name] = common(name) or _DEFAULTS[name]
        super().__init__(
            p=p,
            same_on_batch=same_on_batch,
            same_on_image=same_on_image,
            align_corners=align_corners,
            generator=generator,
            drop_invalid=drop_invalid,
            **options,
        )
        for k, t in enumerate(transforms):
            self.add_module(str(k), t)

    def children_list(self) -> list[PatchAugmentationBase]:
        return [m for m in self.children() if isinstance(m, PatchAugmentationBase)]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[PatchAugmentationBase]:
        return iter(self.children_list())

    def __getitem__(self, index: int) -> PatchAugmentationBase:
        return self.children_list()[index]

    # ----------------------------------------------------------------- hooks

    def _sample_params(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        groups: tuple[Tensor, Tensor] | None,
    ) -> Params:
        """Every child samples for all objects (its own sharing); keys get ``"<k>."``."""
        out: Params = {}
        for k, child in enumerate(self.children_list()):
            sub = child._forward_parameters(patches, obj_to_img, batch_size)
            out.update({f"{k}.{name}": value for name, value in sub.items()})
        return out

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        """Fused ``theta_1 @ ... @ theta_K`` of the children's applied matrices."""
        n = patches.shape[0]
        fused = torch.eye(3, dtype=patches.dtype, device=patches.device).expand(n, 3, 3)
        for k, child in enumerate(self.children_list()):
            prefix = f"{k}."
            sub = {name[len(prefix) :]: v for name, v in params.items() if name.startswith(prefix)}
            theta_k = child._theta_from_params(sub, patches)
            fused = fused @ to3x3(theta_k)
        return fused[:, :2, :]

    def search_space(self, params: Params, prefix: str = "") -> list[SearchVariable]:
        """Every child's searched variables (keys ``"<prefix><k>.<name>"``), recursively.

        Example:
            >>> from augpatch import RandomPatchRotation, RandomPatchHorizontalFlip
            >>> seq = PatchSequential(RandomPatchRotation(10.0), RandomPatchHorizontalFlip())
            >>> params = seq.forward_parameters((1, 1, 8, 8), torch.tensor([[0, 0, 4, 4]]))
            >>> [v.key for v in seq.search_space(params)]
            ['0.angle']
        """
        out: list[SearchVariable] = []
        for k, child in enumerate(self.children_list()):
            out += child.search_space(params, f"{prefix}{k}.")
        return out

    def extra_repr(self) -> str:
        return ", ".join(self._option_repr())
