"""``PatchSequential``: compose per-object transforms and resample once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from augpatch import functional as F
from augpatch.functional.checks import BoxesLike, check_bool, parse_boxes
from augpatch.functional.geometry import to3x3
from augpatch.transforms._result import PatchResult
from augpatch.transforms.base import Params, PatchAugmentationBase, SearchVariable
from augpatch.transforms.copy_paste import RandomCopyPaste

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

    **Members that add objects** (:class:`~augpatch.RandomCopyPaste`) have no single
    matrix: the sequence runs them as *stages* between its matrix-composable segments
    (each run of consecutive matrix members is fused into one warp as above). Every
    stage and segment sees the previous one's output (images, boxes, masks, keypoints,
    ``obj_to_img``); the result's ``object_index`` (input object of each row), ``keep``
    (AND of every part's, over all rows) and ``area`` (recomputed by the stages) are
    carried through; the sequence's ``drop_invalid`` applies once at the end (the
    members' own are ignored). Such a sequence needs ``p=1.0`` (its coin could not
    cover the stages), takes no ``image_masks``, and has no ``inverse`` (a paste
    overwrites pixels: it raises); its ``_params`` holds each part's parameters under
    ``"part<j>"`` and replays them with ``params=``. A sequence holding such a member is
    itself a stage of an enclosing sequence.

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
            if not isinstance(t, (PatchAugmentationBase, RandomCopyPaste)):
                raise TypeError(
                    "PatchSequential children must be patch transforms or RandomCopyPaste, "
                    f"got {type(t).__name__} at {k}"
                )
        all_members = transforms
        transforms = tuple(t for t in transforms if not _is_stage(t))
        if len(transforms) < len(all_members) and p != 1.0:
            raise ValueError(f"PatchSequential(p={p}) with a RandomCopyPaste member: p must be 1.0 (the "
                             "sequence's coin cannot cover a stage that adds objects; give the members p)")

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
        for k, t in enumerate(all_members):
            self.add_module(str(k), t)
        self._parts = self._split_parts(all_members) if len(transforms) < len(all_members) else None

    def _split_parts(self, members: tuple[Any, ...]) -> list[tuple[str, Any]]:
        """``("stage", RandomCopyPaste)`` and ``("segment", PatchSequential)`` of the runs of
        consecutive matrix members (one fused warp each, the sequence's options)."""
        parts: list[tuple[str, Any]] = []
        run: list[PatchAugmentationBase] = []
        options = {"resample": self.resample, "padding_mode": self.padding_mode,
                   "align_corners": self.align_corners, "overlap": self.overlap, "generator": self.generator}
        for t in (*members, None):
            if t is not None and not _is_stage(t):
                run.append(t)
                continue
            if run:
                parts.append(("segment", PatchSequential(*run, **options)))
                run = []
            if t is not None:
                parts.append(("stage", t))
        return parts

    def children_list(self) -> list[PatchAugmentationBase]:
        return [m for m in self.children() if isinstance(m, PatchAugmentationBase) and not _is_stage(m)]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[PatchAugmentationBase | RandomCopyPaste]:
        return iter(self._modules.values())  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> PatchAugmentationBase | RandomCopyPaste:
        return list(self._modules.values())[index]  # type: ignore[return-value]

    def _matrix_only(self, what: str) -> None:
        if self._parts is not None:
            raise NotImplementedError(f"PatchSequential.{what}: this sequence has a RandomCopyPaste stage, "
                                      "which has no matrix (its matrix segments have one each)")

    # ----------------------------------------------------------------- stages

    def forward(self, images: Tensor, boxes: BoxesLike | None = None, obj_to_img: Tensor | None = None,
                **kwargs: Any) -> PatchResult:
        """As :meth:`PatchAugmentationBase.forward` (same arguments); with stage members,
        the parts in order (see the class)."""
        if self._parts is None:
            return super().forward(images, boxes, obj_to_img, **kwargs)
        return self._staged(images, boxes, obj_to_img, **kwargs)

    def _staged(self, images: Tensor, boxes: BoxesLike | None, obj_to_img: Tensor | None, *,
                masks: Tensor | None = None, keypoints: Tensor | None = None, image_masks: Tensor | None = None,
                params: Mapping[str, Any] | None = None, image_sizes: Any = None,
                drop_invalid: bool | None = None) -> PatchResult:
        if image_masks is not None:
            raise ValueError("PatchSequential with a RandomCopyPaste member takes no image_masks "
                             "(a paste has no per-image mask rule)")
        batch = images.shape[0] if isinstance(images, Tensor) else 0
        as_list = isinstance(boxes, (list, tuple))
        boxes, obj_to_img, _ = parse_boxes(boxes, obj_to_img, batch)
        stored: dict[str, Any] = {}
        index = keep = area = None
        for j, (kind, part) in enumerate(self._parts):
            sub = None if params is None else params[f"part{j}"]
            kwargs = {"drop_invalid": False} if kind == "stage" else {}  # the sequence drops, at the end
            res = part(images, boxes, obj_to_img, masks=masks, keypoints=keypoints, params=sub,
                       image_sizes=image_sizes, **kwargs)
            stored[f"part{j}"] = res.params
            rows = res.object_index
            index = rows if index is None else index[rows]
            keep = res.keep if keep is None else keep[rows] & res.keep
            area = _carry_area(area, rows, res.area)
            images, boxes, obj_to_img = res.images, res.boxes, res.obj_to_img
            masks, keypoints = res.masks, res.keypoints
        self._params = stored
        if self.drop_invalid if drop_invalid is None else drop_invalid:
            boxes, obj_to_img, index = boxes[keep], obj_to_img[keep], index[keep]
            masks = None if masks is None else masks[keep]
            keypoints = None if keypoints is None else keypoints[keep]
            area = None if area is None else area[keep]
        boxes_ret: Any = F.boxes_to_list(boxes, obj_to_img, batch) if as_list else boxes
        return PatchResult(images, boxes_ret, masks=masks, keypoints=keypoints, keep=keep,
                           obj_to_img=obj_to_img, params=stored, object_index=index, area=area)

    def inverse(self, *args: Any, **kwargs: Any) -> PatchResult:
        """Invert the fused matrix (see :meth:`PatchAugmentationBase.inverse`); refused for a
        sequence with a stage member."""
        if self._parts is not None:
            stage = next(k for k, t in enumerate(self._modules.values()) if _is_stage(t))
            raise NotImplementedError(
                f"PatchSequential.inverse: member {stage} is (or holds) a RandomCopyPaste, which adds objects and "
                "overwrites pixels; no matrix undoes it, so this sequence has no inverse")
        return super().inverse(*args, **kwargs)

    # ----------------------------------------------------------------- hooks

    def _sample_params(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        groups: tuple[Tensor, Tensor] | None,
    ) -> Params:
        """Every child samples for all objects (its own sharing); keys get ``"<k>."``."""
        self._matrix_only("forward_parameters")
        out: Params = {}
        for k, child in enumerate(self.children_list()):
            sub = child._forward_parameters(patches, obj_to_img, batch_size)
            out.update({f"{k}.{name}": value for name, value in sub.items()})
        return out

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        """Fused ``theta_1 @ ... @ theta_K`` of the children's applied matrices."""
        self._matrix_only("compute_matrix")
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
        self._matrix_only("search_space")
        out: list[SearchVariable] = []
        for k, child in enumerate(self.children_list()):
            out += child.search_space(params, f"{prefix}{k}.")
        return out

    def extra_repr(self) -> str:
        return ", ".join(self._option_repr())


def _carry_area(area: Tensor | None, rows: Tensor, new: Tensor | None) -> Tensor | None:
    """The recomputed ``area`` (NaN: unchanged) of the rows after a part that returned
    ``rows`` (its ``object_index``) and ``new`` (its ``area``, or ``None``)."""
    if area is not None:
        area = area[rows]
    if new is None:
        return area
    return new if area is None else torch.where(new.isnan(), area, new)


def _is_stage(member: Any) -> bool:
    """A member run as a stage: a ``RandomCopyPaste``, or a sequence holding one."""
    return isinstance(member, RandomCopyPaste) or (isinstance(member, PatchSequential) and member._parts is not None)
