"""The benchmark families of the paper; importing this package registers every dataset.

``domainbed``: PACS, VLCS, OfficeHome, TerraIncognita, DomainNet (Table 1, 4).
``imagenet``: ImageNet and ImageNet-V2, -Sketch, -A, -R (Table 2, 3).
``coop``: the other ten datasets of CoOp's base-to-new protocol (Table 3).
"""

# Registration order is listing order: DomainBed, ImageNet, CoOp.
from . import domainbed  # noqa: F401,I001
from . import imagenet  # noqa: F401
from . import coop  # noqa: F401
