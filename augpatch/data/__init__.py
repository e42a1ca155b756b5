"""Data-loading glue: collate per-object samples, augment whole batches, seed workers.

Detection datasets return one ``(image, target)`` pair per image, with a
different number of objects in each. augpatch works on flat batches: images
``[B, C, H, W]``, boxes ``[N, 4]`` and ``obj_to_img`` ``[N]``. This module turns
the first into the second and runs augpatch transforms on the batch, on the CPU
or on the GPU.

* :func:`collate_objects` is a ``collate_fn`` for :class:`torch.utils.data.DataLoader`.
* :class:`BatchAugment` applies an augpatch transform to a collated batch; use it
  as the ``collate_fn`` itself when ``num_workers == 0``, or as a step after
  ``batch = loader_output`` (and ``.to(device)``) in the main process otherwise.
* :func:`to_detection_inputs` turns a (augmented) batch back into what torchvision
  detectors take: a list of float images at their own sizes and a list of target dicts.
* :func:`seed_worker` is a ``worker_init_fn`` that gives every worker its own,
  reproducible random streams.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader
    >>> from augpatch.data import collate_objects, seed_worker
    >>> samples = [
    ...     (torch.zeros(3, 32, 40), {"boxes": torch.tensor([[1.0, 2.0, 9.0, 12.0]]),
    ...                               "labels": torch.tensor([3])}),
    ...     (torch.zeros(3, 30, 30), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()}),
    ... ]
    >>> batch = collate_objects(samples)
    >>> batch["images"].shape, batch["boxes"].shape, batch["obj_to_img"].tolist()
    (torch.Size([2, 3, 32, 40]), torch.Size([1, 4]), [0])
    >>> batch["image_sizes"].tolist()
    [[32, 40], [30, 30]]
"""


from __future__ import annotations

from augpatch.data.batch import (  # noqa: F401
    BatchAugment,
    _like_input,
    is_references_batch,
)
from augpatch.data.collate import (  # noqa: F401
    _BATCH_KEYS,
    _IMAGE_LEVEL_KEYS,
    _OBJECT_KEYS,
    _boxes_to_xyxy,
    _cat_object_field,
    _image_to_tensor,
    _is_object_field,
    _is_spatial,
    _pad_images,
    _pad_to,
    _plain,
    _refuse_misaligned,
    _rows,
    _split_sample,
    collate_objects,
    object_fields,
)
from augpatch.data.detection import (  # noqa: F401
    _check_detection_batch,
    _detection_images,
    _detection_order,
    _detection_targets,
    _mask_in_image,
    to_detection_inputs,
)
from augpatch.data.seeding import (  # noqa: F401
    _MAX_CONTAINER,
    _RESEED_HOOKS,
    _RESEED_INTEGRATIONS,
    _load_reseed_integrations,
    _reseed_reachable,
    mix_seeds,
    register_reseed_hook,
    seed_worker,
)

__all__ = [
    "BatchAugment",
    "collate_objects",
    "is_references_batch",
    "mix_seeds",
    "register_reseed_hook",
    "seed_worker",
    "to_detection_inputs",
]
