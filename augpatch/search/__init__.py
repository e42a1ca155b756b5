"""Differentiable and adversarial augmentation search on per-object transforms.

* :class:`PatchPolicy`: a differentiable policy of per-object geometric operations
  (learnable magnitudes, probabilities and selection weights), Faster AutoAugment /
  DADA style, resampling every object once.
* :func:`attack`: worst-case per-object parameters of a transform by projected
  sign-gradient ascent (AugMax style), replayable with ``params=``.
* :func:`relaxed_bernoulli`: the relaxed gate behind a learnable ``p`` in every
  transform.

See the documentation's guide "Differentiable and adversarial search"
(``docs/guides/search.md``) for the estimators, their bias and the seeding under
``DistributedDataParallel``.
"""

from augpatch.search.attack import attack, attack_space
from augpatch.search.policy import OPERATIONS, OperationSpec, PatchPolicy
from augpatch.transforms.sampling import relaxed_bernoulli

__all__ = [
    "OPERATIONS",
    "OperationSpec",
    "PatchPolicy",
    "attack",
    "attack_space",
    "relaxed_bernoulli",
]
