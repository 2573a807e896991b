"""The implementation table: every implementation the suite tracks, in benchmark parameter order.

Adding an implementation is one entry here (plus its module and tests). ``attention.registry``
turns each entry into an ``Implementation``; the benchmarks read this file by path for their
parameter lists. asv runs today's benchmarks against old commits' installed ``attention``
package, so the benchmarks cannot take the order from the package being measured: they read
today's table from the working tree instead, which is why this file is one literal (no imports,
no expressions: they parse it with ``ast.literal_eval``) and why entries are only ever appended (asv maps stored results to parameters by index; a test
checks the order against the committed ``results/benchmarks.json``).

Each entry:
  name         registry key and benchmark parameter value
  pattern      the mathematical function; implementations with the same pattern must agree to
               float tolerance (the accuracy track picks its independent reference by it)
  build        "module:function" in this package: ``build(spec) -> fn(q, k, v) -> out`` on
               ``(batch, seq_len, num_heads, head_dim)`` tensors
  pairs        "module:function": ``pairs(spec)``, query-key pairs summed over heads per batch
               element (behind effective TFLOP/s)
  supports     "module:function": ``supports(spec)``, None when the spec can run, else why not
  description  one line for listings
"""

IMPLEMENTATIONS = (
    {"name": "DenseAttention", "pattern": "dense",
     "build": "_builders:build_dense", "pairs": "spec:dense_pairs", "supports": "_builders:supports_dense",
     "description": "full attention through torch SDPA (backend from spec.extra['sdpa_backend'])"},
    {"name": "DilatedAttention", "pattern": "dilated",
     "build": "_builders:build_dilated", "pairs": "spec:dilated_pairs",
     "supports": "_builders:supports_dilated",
     "description": "dilated attention, plain loops over heads and segments"},
    {"name": "ImprovedDilatedAttention", "pattern": "dilated",
     "build": "_builders:build_improved", "pairs": "spec:dilated_pairs",
     "supports": "_builders:supports_improved",
     "description": "dilated attention, one SDPA call per (group, offset); Triton on CUDA"},
    {"name": "MultiheadDilatedAttention", "pattern": "dilated+proj",
     "build": "_builders:build_multihead", "pairs": "spec:dilated_pairs",
     "supports": "_builders:supports_dilated",
     "description": "q/k/v/out projections around DilatedAttention"},
    {"name": "ImprovedMultiheadDilatedAttention", "pattern": "dilated+proj",
     "build": "_builders:build_improved_multihead", "pairs": "spec:dilated_pairs",
     "supports": "_builders:supports_dilated",
     "description": "q/k/v/out projections around ImprovedDilatedAttention"},
    {"name": "BlockSparseAttention", "pattern": "block_sparse",
     "build": "_builders:build_block_sparse", "pairs": "_builders:block_sparse_pairs",
     "supports": "_builders:supports_block_sparse",
     "description": "block pattern (spec.block_pattern, spec.sparsity); flex on CUDA, block gather else"},
    {"name": "RingDilatedAttention", "pattern": "dilated",
     "build": "_builders:build_ring", "pairs": "spec:dilated_pairs",
     "supports": "_builders:supports_dilated",
     "description": "dilated attention sharded over a process group (world size 1 here)"},
)
