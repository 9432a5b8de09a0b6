"""The seeded synthetic funnel: leads, activities and outcomes with a known ground truth."""

from leadscore.synthetic.funnel import (
    SyntheticFunnel,
    generate_funnel,
    generate_to_dir,
    true_components,
    write_funnel,
)

__all__ = ["SyntheticFunnel", "generate_funnel", "generate_to_dir", "true_components", "write_funnel"]
