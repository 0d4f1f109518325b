"""The tac archive: wire format v1 (docs/archive-format.md), quantizers, entropy stages, packaging.

Dependencies: numpy, the standard library, brotli and constriction, plus
zstandard only when a zstd stage is written or read. From the rest of tac it
imports ``tac_core.errors`` alone, so this folder and ``tac_core/errors.py``
can be vendored into a contest submission as they are.

    q = quantize(weights, QuantSpec("int8_sym", axis=0))
    data = write_archive({"dec.0.weight": q, "latents": lat_q}, options=ChooserOptions(contest_safe=True))
    archive = read_archive(data)      # .quantized (codes as stored), .tensors (float32)
    write_archive({"masks": maps}, options=ChooserOptions(chains={"masks": classmap_chain(384, 512, 5)}))
"""

from tac_core.archive.chain import Chain, Stage, Transform, classmap_chain
from tac_core.archive.chooser import ChooserOptions, choose_sections
from tac_core.archive.classmap import decode_class_maps, encode_class_maps, simplify_class_maps
from tac_core.archive.entropy import register_zstd_dictionary
from tac_core.archive.errors import (ArchiveError, ArchiveLimitError, ArchiveWriteError, MalformedArchiveError,
                                     PackagingError, QuantizationError, StageError, TruncatedArchiveError,
                                     UnknownIdError)
from tac_core.archive.packaging import pack_zip, read_zip_member, unpack_zip
from tac_core.archive.quantizers import QuantSpec, Quantized, dequantize, quantize
from tac_core.archive.reader import Archive, SectionInfo, read_archive
from tac_core.archive.schema import Architecture, TensorSchema, register_schema
from tac_core.archive.writer import SectionPlan, encode_archive, write_archive

__all__ = [
    "Architecture", "Archive", "ArchiveError", "ArchiveLimitError", "ArchiveWriteError", "Chain",
    "ChooserOptions", "MalformedArchiveError", "PackagingError", "QuantSpec", "QuantizationError",
    "Quantized", "SectionInfo", "SectionPlan", "Stage", "StageError", "TensorSchema", "Transform",
    "TruncatedArchiveError", "UnknownIdError", "choose_sections", "classmap_chain", "decode_class_maps",
    "dequantize", "encode_archive", "encode_class_maps", "pack_zip", "quantize", "read_archive",
    "read_zip_member", "register_schema", "register_zstd_dictionary", "simplify_class_maps", "unpack_zip",
    "write_archive",
]
