"""Constants of wire format v1: magic, version, stable numeric ids and caps.

Ids are explicit numbers written into archives; they never change meaning.
See docs/archive-format.md for the normative text.
"""

from __future__ import annotations

import numpy as np

MAGIC = b"\x89TAC"
VERSION = 1

FLAG_BY_POSITION = 1
FLAG_PARAMS_BY_POSITION = 2
KNOWN_FLAGS = FLAG_BY_POSITION | FLAG_PARAMS_BY_POSITION

# --- architectures (section 3) --------------------------------------------
ARCH_NONE = 0
ARCH_HNERV_PAIR_V1 = 1
ARCH_MASK_WARP_V1 = 2
ARCHITECTURES = {ARCH_NONE: "none", ARCH_HNERV_PAIR_V1: "hnerv_pair v1", ARCH_MASK_WARP_V1: "mask_warp v1"}
PRIVATE_ARCH_START = 65536

# --- quantizers (section 4) -----------------------------------------------
Q_RAW = 1
Q_FP16 = 2
Q_INT8_SYM = 16
Q_INT8_ASYM = 17
Q_INT4_SYM = 18
Q_INT4_ASYM = 19
Q_FP4_E2M1 = 32
QUANTIZERS = {Q_RAW: "raw", Q_FP16: "fp16", Q_INT8_SYM: "int8_sym", Q_INT8_ASYM: "int8_asym",
              Q_INT4_SYM: "int4_sym", Q_INT4_ASYM: "int4_asym", Q_FP4_E2M1: "fp4_e2m1"}
QUANTIZER_IDS = {name: qid for qid, name in QUANTIZERS.items()}

# dtype codes for the ``raw`` quantizer (little-endian on the wire)
DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f2"), 3: np.dtype("u1"), 4: np.dtype("i1"),
          5: np.dtype("<u2"), 6: np.dtype("<i2"), 7: np.dtype("<i4"), 8: np.dtype("<i8")}
DTYPE_CODES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: code for code, dt in DTYPES.items()}

# --- transforms and entropy stages (section 5) ----------------------------
T_ZIGZAG = 1
T_DELTA = 2
T_SPLIT = 3
T_TRANSPOSE = 4
TRANSFORMS = {T_ZIGZAG: "zigzag", T_DELTA: "delta", T_SPLIT: "split", T_TRANSPOSE: "transpose"}

S_STORE = 0
S_ZSTD = 1
S_LZMA = 2
S_BROTLI = 3
S_RANGE_STATIC = 4
S_RANGE_ADAPTIVE = 5
S_RANGE_GROUPED = 6
S_CLASSMAP = 7
S_CLASSMAP2 = 8
STAGES = {S_STORE: "store", S_ZSTD: "zstd", S_LZMA: "lzma", S_BROTLI: "brotli",
          S_RANGE_STATIC: "range_static", S_RANGE_ADAPTIVE: "range_adaptive", S_RANGE_GROUPED: "range_grouped",
          S_CLASSMAP: "classmap", S_CLASSMAP2: "classmap2"}
STAGE_ARG_COUNTS = {S_STORE: 0, S_ZSTD: 1, S_LZMA: 4, S_BROTLI: 0, S_RANGE_STATIC: 0, S_RANGE_ADAPTIVE: 1,
                    S_RANGE_GROUPED: 2, S_CLASSMAP: 3, S_CLASSMAP2: 3}
CLASSMAP_STAGES = {S_CLASSMAP: 1, S_CLASSMAP2: 2}  # stage id -> the class-map coder's version
STAGE_IDS = {name: sid for sid, name in STAGES.items()}

# --- caps (section 7) -----------------------------------------------------
MAX_ARCH_PARAMS = 64
MAX_FREE_DIMS = 64
MAX_SECTIONS = 4096
MAX_TENSORS = 4096
MAX_RUNS = 4096
MAX_NAME_BYTES = 255
MAX_RANK = 8
MAX_TENSOR_ELEMENTS = 1 << 28
MAX_DECODED_BYTES = 1 << 28
MAX_TRANSFORMS = 7
CHAIN_COUNT_BITS = 3            # a chain's first varint: stage id << 3 | transform count
MAX_CONTAINER_BYTES = 1 << 31
MAX_VARINT_BYTES = 10
LZMA_DICT_LOG2_RANGE = (12, 24)
RANGE_BLOCK_LOG2_RANGE = (6, 16)
FP4_BLOCK_RANGE = (8, 256)
MAX_GROUPED_RUNS = 4096
MAX_GROUPED_GROUPS = 65536
MAX_CLASSMAP_CLASSES = 256
