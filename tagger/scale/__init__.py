"""Scale-out engines: the bulk run of `tagger.run`, executed on a cluster (Ray Data)."""

from tagger.scale.ray_engine import RayOptions, import_ray, tag_catalog_ray

__all__ = ["RayOptions", "import_ray", "tag_catalog_ray"]
